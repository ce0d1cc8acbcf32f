package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulMeter sits between the gateway and Consul, counting requests,
// answer bytes and the connections the gateway holds open.
type consulMeter struct {
	requests atomic.Int64
	bytes    atomic.Int64
	// state and stateBytes count the shared watch's reads of every check,
	// the answers whose size grows with the catalog.
	state      atomic.Int64
	stateBytes atomic.Int64
	mu         sync.Mutex
	conns      map[net.Conn]bool
}

func (m *consulMeter) open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// countingWriter counts the answer bytes the meter passes on.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (w countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func startConsulMeter(consulAddr string) (*consulMeter, string) {
	target, _ := url.Parse("http://" + consulAddr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 4096}
	// Long polls end in cancellations when the gateway stops: not news.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	m := &consulMeter{conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.requests.Add(1)
			if r.URL.Path == "/v1/health/state/any" {
				m.state.Add(1)
				// Uncompressed, so the figure is what Consul serializes.
				r.Header.Del("Accept-Encoding")
				rp.ServeHTTP(countingWriter{countingWriter{w, &m.stateBytes}, &m.bytes}, r)
				return
			}
			rp.ServeHTTP(countingWriter{w, &m.bytes}, r)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			m.mu.Lock()
			defer m.mu.Unlock()
			switch s {
			case http.StateNew:
				m.conns[c] = true
			case http.StateClosed, http.StateHijacked:
				delete(m.conns, c)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	return m, ln.Addr().String()
}

// window is what the gateway and Consul did over one stretch of time.
type window struct {
	seconds                float64
	requests, bytes        int64
	stateReads, stateBytes int64
	gwCPU, consulCPU       float64 // share of one core
	maxConns               int
}

// measure runs during (which may be nil: a quiet window) for d and
// returns the Consul traffic, the CPU of both processes and the most
// connections the gateway held, sampled every 100 ms.
func measure(m *consulMeter, gw, consul *proc, d time.Duration, during func(stop <-chan struct{})) window {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if during != nil {
		wg.Go(func() { during(stop) })
	}
	r0, b0, s0, sb0 := m.requests.Load(), m.bytes.Load(), m.state.Load(), m.stateBytes.Load()
	g0, c0 := cpuTicks(gw.pid()), cpuTicks(consul.pid())
	t0 := time.Now()
	w := window{}
	for time.Since(t0) < d {
		time.Sleep(100 * time.Millisecond)
		w.maxConns = max(w.maxConns, m.open())
	}
	close(stop)
	wg.Wait()
	w.seconds = time.Since(t0).Seconds()
	w.requests, w.bytes = m.requests.Load()-r0, m.bytes.Load()-b0
	w.stateReads, w.stateBytes = m.state.Load()-s0, m.stateBytes.Load()-sb0
	w.gwCPU = float64(cpuTicks(gw.pid())-g0) / clockTick / w.seconds
	w.consulCPU = float64(cpuTicks(consul.pid())-c0) / clockTick / w.seconds
	return w
}

// scaleBench registers services of 3 instances each (TTL checks, so
// health can flap instantly) and one route per service against a Consul
// with its default limits, then measures the gateway: time to the first
// full table, memory, connections held, what it costs Consul in steady
// state and under 100 health flaps/s, and, up to 1,000 services, how fast
// changes reach traffic at that size.
//
// perService runs the gateway with one health watch per service instead
// (-health-watch-threshold -1), against a Consul whose connection limit is
// raised so that it can: the comparison the shared watches are measured
// against.
func scaleBench(dir string, bin binaries, services int, settle time.Duration, changes int, out string, perService bool) {
	limits, gwFlags, mode := "", []string{}, "Consul dev agent with default limits (http_max_conns_per_client 200); gateway with default flags (shared health watches above 32 services)"
	if perService {
		limits, gwFlags = "limits { http_max_conns_per_client = 16384 }\n", []string{"-health-watch-threshold", "-1"}
		mode = "per-service health watches (-health-watch-threshold -1), Consul's http_max_conns_per_client raised to 16384 so they can run"
	}
	client, consulAddr, consul := startConsulLimits(dir, limits)
	ports, _ := startUpstreams(dir, bin.upstream, 1)
	start := time.Now()
	registerCatalog(client, services, ports[0])
	// The routes in 10 documents, as 10 teams would own them.
	per := max(services/10, 1)
	for d := 0; d*per < services; d++ {
		var doc strings.Builder
		for i := d * per; i < min((d+1)*per, services); i++ {
			fmt.Fprintf(&doc, "route \"r%d\" {\n  path_prefix = \"/svc%d/\"\n  service = \"svc%d\"\n}\n", i, i, i)
		}
		putKV(client, fmt.Sprintf("gateway/routes/team-%d.hcl", d), doc.String())
	}
	// The freshness route only where it is measured: the table holds at
	// most 10,000 routes, all taken at 10,000 services.
	fresh := services <= 1000 && changes > 0
	routes := services
	if fresh {
		putKV(client, "gateway/routes/fresh.hcl", "route \"fresh\" {\n  path_prefix = \"/fresh/\"\n  service = \"fresh\"\n}\n")
		routes++
	}
	registered := time.Since(start)

	meter, meterAddr := startConsulMeter(consulAddr)
	proxyCPU, _ := cpus()
	t0 := time.Now()
	gw, gwAddr, admin := startGateway(dir, bin.gateway, meterAddr, proxyCPU, gwFlags...)
	for !fullTable(admin, routes) {
		if time.Since(t0) > 5*time.Minute {
			fail("gateway did not load %d routes within 5 minutes", services)
		}
		time.Sleep(50 * time.Millisecond)
	}
	full := time.Since(t0) // from launching the process to a complete table
	rssReady := rssMB(gw.pid())
	startRequests := meter.requests.Load()

	steady := measure(meter, gw, consul, settle, nil)
	var flaps atomic.Int64
	churn := measure(meter, gw, consul, settle, func(stop <-chan struct{}) { flap(client, services, stop, &flaps) })
	rssChurn := rssMB(gw.pid())

	var b strings.Builder
	fmt.Fprintf(&b, "# Scale: %d services x 3 instances, %d routes\n\n", services, routes)
	fmt.Fprintf(&b, "%s, %d CPUs, %s, %s. Gateway pinned to CPU 0 with GOMAXPROCS=1, talking to Consul through a counting proxy. Load average at start: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), mode, loadAvg())
	fmt.Fprintf(&b, "| measure | value |\n|---|---:|\n")
	fmt.Fprintf(&b, "| registering %d instances with a check each (catalog transactions of 64 operations) | %v |\n", 3*services+1, registered.Round(time.Millisecond))
	fmt.Fprintf(&b, "| gateway start -> full table served | %v |\n", full.Round(time.Millisecond))
	fmt.Fprintf(&b, "| requests to Consul until the full table | %d |\n", startRequests)
	fmt.Fprintf(&b, "| gateway RSS at full table | %.1f MB |\n", rssReady)
	fmt.Fprintf(&b, "| gateway RSS after churn | %.1f MB |\n", rssChurn)
	for _, w := range []struct {
		name string
		w    window
	}{{fmt.Sprintf("steady state (%v, no changes)", settle), steady}, {fmt.Sprintf("churn (%v, 100 health flaps/s)", settle), churn}} {
		fmt.Fprintf(&b, "| %s: requests to Consul | %.1f /s |\n", w.name, float64(w.w.requests)/w.w.seconds)
		fmt.Fprintf(&b, "| %s: answer bytes from Consul (check list uncompressed, the rest as sent) | %.2f MB/s |\n", w.name, float64(w.w.bytes)/w.w.seconds/1e6)
		if w.w.stateReads > 0 {
			fmt.Fprintf(&b, "| %s: reads of the check list | %.1f /s of %.2f MB each |\n", w.name, float64(w.w.stateReads)/w.w.seconds, float64(w.w.stateBytes)/float64(w.w.stateReads)/1e6)
		}
		fmt.Fprintf(&b, "| %s: gateway CPU | %.1f %% of a core |\n", w.name, 100*w.w.gwCPU)
		fmt.Fprintf(&b, "| %s: Consul agent+server CPU | %.1f %% of a core |\n", w.name, 100*w.w.consulCPU)
		fmt.Fprintf(&b, "| %s: most connections held to Consul | %d |\n", w.name, w.w.maxConns)
	}
	fmt.Fprintf(&b, "| health flaps achieved during churn (one catalog write each) | %.1f /s |\n", float64(flaps.Load())/churn.seconds)
	fmt.Fprintf(&b, "| connections held to Consul at the end | %d |\n", meter.open())
	if fresh {
		kv, health := freshness(client, gwAddr, changes)
		for _, m := range []struct {
			name string
			d    []time.Duration
		}{{"KV write -> new route served", kv}, {"health critical (Consul knows) -> instance excluded", health}} {
			fmt.Fprintf(&b, "| freshness at %d services, %s (%d changes): p50 / p99 / max | %s / %s / %s |\n", services, m.name, len(m.d),
				pct(m.d, 50).Round(10*time.Microsecond), pct(m.d, 99).Round(10*time.Microsecond), slices.Max(m.d).Round(10*time.Microsecond))
		}
	}
	fmt.Print("\n" + b.String())
	if out != "" {
		must(os.WriteFile(out, []byte(b.String()), 0o644))
	}
}

// fullTable reports whether the table has its routes, every svc route
// with its 3 instances (and the fresh route its one).
func fullTable(admin string, routes int) bool {
	resp, err := http.Get("http://" + admin + "/routes")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Routes []struct {
			Service   string            `json:"service"`
			Instances []json.RawMessage `json:"instances"`
		} `json:"routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Routes) != routes {
		return false
	}
	for _, r := range body.Routes {
		want := 3
		if r.Service == "fresh" {
			want = 1
		}
		if len(r.Instances) != want {
			return false
		}
	}
	return true
}

// nodeOf is the catalog node service i's instances are registered on:
// nodes without an agent, so instances are written straight to the
// catalog in transactions (an agent takes about 25 ms a registration on
// this machine, 12 minutes for 30,000) and no anti-entropy rewrites them.
// Ten services a node: Consul's cost of a write grows with the services
// on its node, and real catalogs spread them.
func nodeOf(i int) string { return fmt.Sprintf("bench-node-%d", i/10) }

func registerCatalog(client *api.Client, services, port int) {
	var ops api.TxnOps
	flush := func() {
		if len(ops) == 0 {
			return
		}
		ok, resp, _, err := client.Txn().Txn(ops, nil)
		must(err)
		if !ok {
			fail("catalog transaction failed: %v", resp.Errors)
		}
		ops = ops[:0]
	}
	add := func(node, service, id string) {
		ops = append(ops,
			&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node,
				Service: api.AgentService{ID: id, Service: service, Address: "127.0.0.1", Port: port}}},
			&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: checkOf(node, service, id, api.HealthPassing)}})
		if len(ops) >= 62 { // Consul's limit is 64 operations a transaction
			flush()
		}
	}
	for i := range services {
		if i%10 == 0 {
			flush() // a node is created before its services
			ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: nodeOf(i), Address: "127.0.0.1"}}})
		}
		for j := range 3 {
			add(nodeOf(i), fmt.Sprintf("svc%d", i), fmt.Sprintf("svc%d-%d", i, j))
		}
	}
	flush()
	ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: "bench-fresh", Address: "127.0.0.1"}}})
	add("bench-fresh", "fresh", "fresh-1")
	flush()
}

func checkOf(node, service, id, status string) api.HealthCheck {
	return api.HealthCheck{Node: node, CheckID: "check-" + id, Name: "bench", Status: status, ServiceID: id, ServiceName: service}
}

// setCheck writes one instance's check status to the catalog: one raft
// write, what one health flap costs Consul.
func setCheck(client *api.Client, node, service, id, status string) {
	ok, resp, _, err := client.Txn().Txn(api.TxnOps{&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: checkOf(node, service, id, status)}}}, nil)
	must(err)
	if !ok {
		fail("check update failed: %v", resp.Errors)
	}
}

// flap sets 100 instances a second critical, then passing on the next
// round, service by service, until stop; each is one catalog write, two
// writers at once so a slow answer does not lower the rate.
func flap(client *api.Client, services int, stop <-chan struct{}, done *atomic.Int64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				k := int(next.Add(1) - 1)
				status := api.HealthCritical
				if (k/services)%2 == 1 {
					status = api.HealthPassing
				}
				svc := k % services
				setCheck(client, nodeOf(svc), fmt.Sprintf("svc%d", svc), fmt.Sprintf("svc%d-%d", svc, (k/(2*services))%3), status)
				done.Add(1)
			}
		})
	}
	wg.Wait()
}

// freshness measures, at this table size, KV write -> new route served
// and health critical -> instance excluded (the route's only instance, so
// traffic shows it), as bench -mode freshness does on a small table.
// changeGap spaces the freshness changes: longer than the watches'
// rate-limit spacing (the KV watch calls Consul at most 20 times a second,
// the shared health watches 10), so each change is measured alone, as one
// change reaching traffic. Changes made back to back instead queue behind
// those limits by design (the price of a bounded Consul load), about 50 ms
// and 100 ms each; docs/performance.md gives both figures.
const changeGap = 300 * time.Millisecond

func freshness(client *api.Client, gwAddr string, changes int) (kv, health []time.Duration) {
	for i := range changes {
		time.Sleep(changeGap)
		path := fmt.Sprintf("/kv-%d/", i)
		doc := fmt.Sprintf("route %q {\n  path_prefix = %q\n  service = \"fresh\"\n}\n", fmt.Sprintf("kv-%d", i), path)
		start := time.Now()
		putKV(client, "gateway/routes/kv.hcl", doc)
		pollUntil(func() bool { return status("http://"+gwAddr+path) == 200 })
		kv = append(kv, time.Since(start))
	}
	for range changes {
		time.Sleep(changeGap)
		setCheck(client, "bench-fresh", "fresh", "fresh-1", api.HealthCritical)
		start := time.Now()
		pollUntil(func() bool { return status("http://"+gwAddr+"/fresh/") != 200 })
		health = append(health, time.Since(start))
		setCheck(client, "bench-fresh", "fresh", "fresh-1", api.HealthPassing)
		pollUntil(func() bool { return status("http://"+gwAddr+"/fresh/") == 200 })
	}
	return kv, health
}
