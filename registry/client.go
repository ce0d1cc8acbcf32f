package registry

import (
	"fmt"
	"net/http"

	"github.com/hashicorp/consul/api"
)

// maxIdleConns bounds the idle pool. The api client's default keeps only
// GOMAXPROCS+1 idle connections per host, so when many long polls complete at
// once (one Consul write can wake every health watch) the surplus connections
// are closed and re-dialled on the next poll. All watches talk to one agent,
// so the per-host limit is the whole pool.
const maxIdleConns = 1024

// NewClient returns a Consul API client configured from the standard
// environment (api.DefaultConfig: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_CACERT, ...). A non-empty addr overrides the address; it may carry
// a scheme ("https://host:8501") or be "unix:///path" (in which case the api
// client uses its own non-pooled transport). The client has no overall HTTP
// timeout: watches bound each call with a context deadline instead.
func NewClient(addr string) (*api.Client, error) {
	client, _, err := newClient(addr)
	return client, err
}

// newClient also returns the transport so tests can close idle connections
// before checking for leaked goroutines.
func newClient(addr string) (*api.Client, *http.Transport, error) {
	cfg := api.DefaultConfig()
	if addr != "" {
		cfg.Address = addr
	}
	cfg.Transport.MaxIdleConns = maxIdleConns
	cfg.Transport.MaxIdleConnsPerHost = maxIdleConns
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: consul client for %q: %w", cfg.Address, err)
	}
	return client, cfg.Transport, nil
}
