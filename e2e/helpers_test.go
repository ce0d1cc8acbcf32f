package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// routesPrefix is the gateway's default -kv-prefix, where the tests put
// route documents.
const routesPrefix = "gateway/routes/"

// startConsul starts a real dev-mode agent for one test.
func startConsul(t *testing.T) (*api.Client, string) {
	t.Helper()
	srv := consultest.Start(t)
	return consulClient(t, srv.HTTPAddr), srv.HTTPAddr
}

func consulClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// backend is one upstream instance registered in Consul with a TTL check,
// so tests flip its health instantly instead of waiting for an interval.
type backend struct {
	id, service string
	srv         *httptest.Server
}

// startBackend runs an instance that answers with its ID and the path it
// was asked for, as JSON.
func startBackend(t *testing.T, client *api.Client, service, id string) *backend {
	t.Helper()
	return startBackendWith(t, client, service, id, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": id, "path": r.URL.Path})
	})
}

// startBackendWith is startBackend with the upstream's own handler.
func startBackendWith(t *testing.T, client *api.Client, service, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id, service: service}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	registerInstance(t, client, service, id, b.srv.Listener.Addr().String())
	return b
}

// startTaggedBackend is startBackend registered with Consul tags.
func startTaggedBackend(t *testing.T, client *api.Client, service, id string, tags ...string) *backend {
	t.Helper()
	b := &backend{id: id, service: service}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": id, "path": r.URL.Path})
	}))
	t.Cleanup(b.srv.Close)
	registerInstance(t, client, service, id, b.srv.Listener.Addr().String(), tags...)
	return b
}

// registerInstance registers the instance at addr (host:port) of service,
// with tags, and a passing TTL check (see backend.setHealth), for
// upstreams that are not a backend's httptest server. Registering an id
// again replaces its tags, as a redeploy does.
func registerInstance(t *testing.T, client *api.Client, service, id, addr string, tags ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: p, Tags: tags,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m"},
	})
	if err != nil {
		t.Fatal(err)
	}
	(&backend{id: id, service: service}).setHealth(t, client, api.HealthPassing)
}

func (b *backend) setHealth(t *testing.T, client *api.Client, status string) {
	t.Helper()
	if err := client.Agent().UpdateTTL("ttl-"+b.id, "test", status); err != nil {
		t.Fatal(err)
	}
}

// addr is the instance's host:port, as metrics label it.
func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// putRoute writes a route document under the gateway's KV prefix.
func putRoute(t *testing.T, client *api.Client, key, doc string) {
	t.Helper()
	if _, err := client.KV().Put(&api.KVPair{Key: routesPrefix + key, Value: []byte(doc)}, nil); err != nil {
		t.Fatal(err)
	}
}

func routeDoc(name, prefix, service string) string {
	return fmt.Sprintf("route %q {\n  path_prefix = %q\n  service     = %q\n}\n", name, prefix, service)
}

// gatewayRig is a gateway in front of the instances of one service.
type gatewayRig struct {
	client   *api.Client
	gw       *gatewayProc
	backends []*backend
	consul   *consulProxy // the gateway's way to Consul
}

// routedService starts Consul, n backends of service name (name-1 ...),
// a route /api/NAME to them and the gateway (with the extra flags, and
// talking to Consul through a consulProxy), and waits until the route has
// all n instances.
func routedService(t *testing.T, name string, n int, extra ...string) *gatewayRig {
	t.Helper()
	client, addr := startConsul(t)
	r := &gatewayRig{client: client}
	for i := range n {
		r.backends = append(r.backends, startBackend(t, client, name, fmt.Sprintf("%s-%d", name, i+1)))
	}
	putRoute(t, client, name+".hcl", routeDoc(name, "/api/"+name, name))
	r.consul = startConsulProxy(t, addr)
	r.gw = startGateway(t, r.consul.addr, extra...)
	testkit.WaitFor(t, fmt.Sprintf("%d instances", n), func() bool {
		rs := getRoutes(t, r.gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == n
	})
	return r
}

// getInstance sends one request through the gateway and returns its status
// and the instance that answered ("" for gateway errors).
func getInstance(t *testing.T, p *gatewayProc, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	inst, _ := body["instance"].(string)
	return resp.StatusCode, inst
}

// adminGet reads a JSON page of the admin listener.
func adminGet(t *testing.T, p *gatewayProc, path string) (int, map[string]any) {
	t.Helper()
	resp, err := p.adminClient.Get("http://" + p.admin + path)
	if err != nil {
		t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// adminText reads any admin page as text.
func adminText(t *testing.T, p *gatewayProc, path string) string {
	t.Helper()
	resp, err := p.adminClient.Get("http://" + p.admin + path)
	if err != nil {
		t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	return string(b)
}

// routesBody is the part of the admin /routes page the tests read.
type routesBody struct {
	Routes []struct {
		Name           string         `json:"name"`
		SourceKey      string         `json:"source_key"`
		Service        string         `json:"service"`
		Instances      []instanceView `json:"instances"`
		Panic          string         `json:"panic"`
		CircuitBreaker string         `json:"circuit_breaker"`
		HTTPSOnly      bool           `json:"https_only"`
		HSTSMaxAge     string         `json:"hsts_max_age"`
		Tunnels        int            `json:"tunnels"`
		// Datacenter serves the route now; DatacenterReason says why
		// when it is a failover one.
		Datacenter       string      `json:"datacenter"`
		DatacenterReason string      `json:"datacenter_reason"`
		Splits           []splitView `json:"splits"`
		StickyCookie     string      `json:"sticky_cookie"`
		Connect          bool        `json:"connect"`
		Mirrors          []struct {
			Service        string  `json:"service"`
			Percent        float64 `json:"percent"`
			MaxConcurrency int     `json:"max_concurrency"`
		} `json:"mirrors"`
	} `json:"routes"`
	Aggregates []struct {
		Name  string `json:"name"`
		Calls []struct {
			Name      string         `json:"name"`
			Instances []instanceView `json:"instances"`
		} `json:"calls"`
	} `json:"aggregates"`
	Errors []configError `json:"errors"`
}

// splitView is one destination of a route with splits in /routes.
type splitView struct {
	Service       string         `json:"service"`
	Tag           string         `json:"tag"`
	Weight        int            `json:"weight"`
	Available     bool           `json:"available"`
	Note          string         `json:"note"`
	Served        uint64         `json:"served"`
	ObservedShare float64        `json:"observed_share"`
	Instances     []instanceView `json:"instances"`
}

type instanceView struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Passing bool   `json:"passing"`
	Ejected bool   `json:"ejected"`
	Warning bool   `json:"warning"`
	Weight  int    `json:"weight"`
}

// configError is one rejected route document, as /routes lists it.
type configError struct {
	Key           string    `json:"key"`
	Message       string    `json:"message"`
	Serving       string    `json:"serving"`
	LastGoodIndex uint64    `json:"last_good_index"`
	LastGoodSince time.Time `json:"last_good_since"`
}

// getRoutes reads the routing table the gateway serves now.
// waitAggregates waits until p's /routes lists n aggregates, each call
// with its one instance: the state every aggregate test starts from.
func waitAggregates(t *testing.T, p *gatewayProc, n int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%d aggregates with every call's instance", n), func() bool {
		aggs := getRoutes(t, p).Aggregates
		for _, ag := range aggs {
			for _, c := range ag.Calls {
				if len(c.Instances) != 1 {
					return false
				}
			}
		}
		return len(aggs) == n
	})
}

func getRoutes(t *testing.T, p *gatewayProc) routesBody {
	t.Helper()
	resp, err := p.adminClient.Get("http://" + p.admin + "/routes")
	if err != nil {
		t.Fatalf("GET /routes: %v", err)
	}
	defer resp.Body.Close()
	var body routesBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/routes: %v", err)
	}
	return body
}

// scrape fetches the admin /metrics page and parses it as Prometheus does.
func scrape(t *testing.T, p *gatewayProc) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := p.adminClient.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels include
// every label in want ("k=v" pairs), or -1 when there is none. For a
// histogram or summary it is the number of observations.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount())
		}
	}
	return -1
}

// goroutineSlack is how far above its baseline a gateway's goroutine
// count may be after a test's traffic: even at rest it moves by one or
// two (a timer's function running, a watch between two calls). A leak
// per request or per table swap is far above it.
const goroutineSlack = 2

// goroutineBaseline reads the gateway's goroutine count at rest. It takes
// the lowest of a few readings, since goroutines still unwinding from
// earlier requests only ever add to a reading.
func goroutineBaseline(t *testing.T, p *gatewayProc) int {
	t.Helper()
	low := -1
	for range 10 {
		if n := int(sample(scrape(t, p), "go_goroutines")); low < 0 || n < low {
			low = n
		}
	}
	if low <= 0 {
		t.Fatal("/metrics has no go_goroutines")
	}
	return low
}

// checkGoroutinesBack waits until the gateway is back to its baseline
// (within goroutineSlack). If it never is, the test fails and the gateway
// is stopped with SIGQUIT, so its log shows every goroutine's stack.
func checkGoroutinesBack(t *testing.T, p *gatewayProc, baseline int) {
	t.Helper()
	p.dumpOnFailure = true
	var now int
	testkit.WaitFor(t, fmt.Sprintf("gateway goroutines back to %d (+%d)", baseline, goroutineSlack), func() bool {
		now = int(sample(scrape(t, p), "go_goroutines"))
		return now <= baseline+goroutineSlack
	})
	t.Logf("gateway goroutines: %d before, %d after", baseline, now)
}

// liveHeapAfterGC returns the gateway's live heap as its garbage collector
// last marked it, once two collections have finished since the call: the
// second started after the first ended, so it saw the heap as it is now.
// The caller keeps traffic flowing, which is what makes collections run.
func liveHeapAfterGC(t *testing.T, p *gatewayProc) uint64 {
	t.Helper()
	cycles := sample(scrape(t, p), "go_gc_duration_seconds")
	if cycles < 0 {
		t.Fatal("/metrics has no go_gc_duration_seconds")
	}
	live := testkit.WaitValue(t, "two garbage collections in the gateway", func() (float64, bool) {
		fams := scrape(t, p)
		return sample(fams, "go_gc_heap_live_bytes"), sample(fams, "go_gc_duration_seconds") >= cycles+2
	})
	if live <= 0 {
		t.Fatal("/metrics has no go_gc_heap_live_bytes")
	}
	return uint64(live)
}

// load keeps clients busy sending GETs to url until finish, counting
// successes and failures: the fault tests' "under concurrent load".
type load struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       atomic.Bool
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, url string, clients int) *load {
	t.Helper()
	return startLoadWith(t, url, clients, func() *http.Transport { return &http.Transport{} })
}

// startLoadWith is startLoad with each client's transport from
// transport (for TLS settings).
func startLoadWith(t *testing.T, url string, clients int, transport func() *http.Transport) *load {
	t.Helper()
	l := &load{}
	for range clients {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: transport()}
			// Closing its connections on exit lets goroutine checks count
			// the gateway's goroutines without the load's connections.
			defer c.CloseIdleConnections()
			for !l.stop.Load() {
				resp, err := c.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(func() { l.stop.Store(true); l.wg.Wait() })
	return l
}

// finish stops the clients and fails the test if any request failed.
func (l *load) finish(t *testing.T) int64 {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if n := l.failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, n+l.ok.Load(), l.firstErr.Load())
	}
	return l.ok.Load()
}

// waitProgress waits until the load has completed n more requests, so a
// fault is injected while traffic really flows.
func (l *load) waitProgress(t *testing.T, n int64) {
	t.Helper()
	base := l.ok.Load() + l.failed.Load()
	testkit.WaitFor(t, "load progress", func() bool { return l.ok.Load()+l.failed.Load() >= base+n })
}

// rawRequest sends req to the gateway's public listener byte for byte
// (Go's client would canonicalise the Host, the path or a missing Host)
// and returns the status and the JSON body's "instance" and "error".
func rawRequest(t *testing.T, p *gatewayProc, req string) (status int, instance, errMsg string) {
	t.Helper()
	conn, err := net.Dial("tcp", p.public)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	instance, _ = body["instance"].(string)
	errMsg, _ = body["error"].(string)
	return resp.StatusCode, instance, errMsg
}

// consulProxy sits between a gateway and its Consul agent and watches the
// conversation: when each call started (to bound how often the gateway
// calls an absent Consul), and per service the last health answer handed
// to the gateway and whether it has asked again since. A watch asks again
// only after it has stored and announced what it got, so an answer asked
// past is one the gateway has taken in.
type consulProxy struct {
	addr string // host:port to give the gateway as -consul

	mu     sync.Mutex
	starts []time.Time
	health map[string]*healthAnswer // by service name
}

// healthAnswer is the last answer to a service's health query.
type healthAnswer struct {
	instances []consulInstance
	taken     bool // the gateway asked again after receiving it
}

// consulInstance is one entry of a health answer, judged as the gateway's
// registry does: passing when every node and service check passes.
type consulInstance struct {
	id      string
	passing bool
}

func startConsulProxy(t *testing.T, consulAddr string) *consulProxy {
	t.Helper()
	target, _ := url.Parse("http://" + consulAddr)
	c := &consulProxy{health: map[string]*healthAnswer{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			// Uncompressed answers, so ModifyResponse can read them.
			pr.Out.Header.Del("Accept-Encoding")
		},
		// Calls cut short (the gateway stopping, Consul stopped on
		// purpose) are the tests' doing; the gateway sees and reports
		// each as a 502.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		service, ok := strings.CutPrefix(resp.Request.URL.Path, "/v1/health/service/")
		if !ok || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return err
		}
		var entries []*api.ServiceEntry
		if err := json.Unmarshal(body, &entries); err != nil {
			return nil // not ours to judge; the gateway will complain
		}
		answer := &healthAnswer{instances: []consulInstance{}}
		for _, e := range entries {
			answer.instances = append(answer.instances,
				consulInstance{id: e.Service.ID, passing: e.Checks.AggregatedStatus() == api.HealthPassing})
		}
		c.mu.Lock()
		c.health[service] = answer
		c.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.starts = append(c.starts, time.Now())
		if service, ok := strings.CutPrefix(r.URL.Path, "/v1/health/service/"); ok && c.health[service] != nil {
			c.health[service].taken = true
		}
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.addr = srv.Listener.Addr().String()
	return c
}

// between counts the calls that started in [from, to).
func (c *consulProxy) between(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.starts {
		if !s.Before(from) && s.Before(to) {
			n++
		}
	}
	return n
}

// takenHealth returns the last health answer for service once the gateway
// has taken it in (ok false until then).
func (c *consulProxy) takenHealth(service string) (instances []consulInstance, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.health[service]
	if a == nil || !a.taken {
		return nil, false
	}
	return a.instances, true
}
