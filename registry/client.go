package registry

import (
	"fmt"
	"net/http"
	"os"

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

// DefaultAddr is the Consul address used when neither the addr argument
// nor CONSUL_HTTP_ADDR gives one: what Consul's own CLI uses and what the
// gateway's help states. The api package's default, localhost:8500, is a
// name lookup that may answer ::1 first, where a local agent started with
// -client 127.0.0.1 does not listen.
const DefaultAddr = "127.0.0.1:8500"

// Address is the Consul address NewClient(addr) talks to, for messages
// that name it.
func Address(addr string) string {
	return clientConfig(addr).Address
}

// clientConfig is api.DefaultConfig with addr, else CONSUL_HTTP_ADDR,
// else DefaultAddr.
func clientConfig(addr string) *api.Config {
	cfg := api.DefaultConfig()
	switch {
	case addr != "":
		cfg.Address = addr
	case os.Getenv(api.HTTPAddrEnvName) == "":
		cfg.Address = DefaultAddr
	}
	return cfg
}

// newClient also returns the transport so tests can close idle connections
// before checking for leaked goroutines.
func newClient(addr string) (*api.Client, *http.Transport, error) {
	cfg := clientConfig(addr)
	cfg.Transport.MaxIdleConns = maxIdleConns
	cfg.Transport.MaxIdleConnsPerHost = maxIdleConns
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: consul client for %q: %w", cfg.Address, err)
	}
	return client, cfg.Transport, nil
}
