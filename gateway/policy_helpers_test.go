package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// routesFrom parses a route document, so tests get the same defaults and
// validation as documents from Consul.
func routesFrom(t *testing.T, src string) []config.Route {
	t.Helper()
	d, err := config.Parse("test", []byte(src), 1)
	if err != nil {
		t.Fatalf("route document: %v", err)
	}
	return d.Routes
}

// policyGateway serves routes from src over the given instances.
type policyGateway struct {
	gw    *Gateway
	b     *tableBuilder
	url   string
	insts map[string][]registry.Instance
}

func startPolicyGateway(t *testing.T, opts Options, src string, insts map[string][]registry.Instance) *policyGateway {
	t.Helper()
	gw := New(opts)
	pg := &policyGateway{gw: gw, b: newTableBuilder(gw.deps), insts: insts}
	pg.publish(t, src)
	pg.url = serve(t, gw).URL
	return pg
}

func (pg *policyGateway) publish(t *testing.T, src string) {
	t.Helper()
	pg.gw.Publish(pg.b.build(routesFrom(t, src), fixed(pg.insts), nil))
}

func (pg *policyGateway) route(name string) *Route {
	for _, r := range pg.gw.Table().Routes() {
		if r.Config.Name == name {
			return r
		}
	}
	return nil
}

// response is what a test needs of an answer.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request with headers given as "Name: value" strings.
func do(t *testing.T, method, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(body)}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
