package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulMeter sits between the gateway and Consul, counting requests and
// the connections the gateway holds open.
type consulMeter struct {
	requests atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func (m *consulMeter) open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

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
			rp.ServeHTTP(w, r)
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

// scaleBench loads 1,000 services of 3 instances and 1,000 routes, then
// measures how the gateway copes: time to the first full table, its
// memory, and what it costs Consul in steady state.
func scaleBench(dir string, bin binaries, services int, settle time.Duration) {
	client, consulAddr := startConsul(dir)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range services {
		for j := range 3 {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				reg := &api.AgentServiceRegistration{ID: fmt.Sprintf("svc%d-%d", i, j), Name: fmt.Sprintf("svc%d", i),
					Address: "127.0.0.1", Port: 20000 + j}
				must(client.Agent().ServiceRegister(reg))
			}()
		}
	}
	wg.Wait()
	// 1,000 routes in 10 documents, as 10 teams would own them.
	per := max(services/10, 1)
	for d := 0; d*per < services; d++ {
		var doc strings.Builder
		for i := d * per; i < min((d+1)*per, services); i++ {
			fmt.Fprintf(&doc, "route \"r%d\" {\n  path_prefix = \"/svc%d/\"\n  service = \"svc%d\"\n}\n", i, i, i)
		}
		putKV(client, fmt.Sprintf("gateway/routes/team-%d.hcl", d), doc.String())
	}
	fmt.Printf("registered %d services x 3 instances and %d routes in %v\n", services, services, time.Since(start).Round(time.Millisecond))

	meter, meterAddr := startConsulMeter(consulAddr)
	proxyCPU, _ := cpus()
	t0 := time.Now()
	gw, _, admin := startGateway(dir, bin.gateway, meterAddr, proxyCPU)
	waitRoutes(admin, services, 3)
	full := time.Since(t0) // from launching the process to a complete table
	rssReady := rssMB(gw.pid())

	before := meter.requests.Load()
	time.Sleep(settle)
	steady := float64(meter.requests.Load()-before) / settle.Seconds()
	fmt.Printf("\n# Scale (%d services x 3 instances, %d routes)\n\n| measure | value |\n|---|---:|\n", services, services)
	fmt.Printf("| gateway start -> full table served | %v |\n", full.Round(time.Millisecond))
	fmt.Printf("| gateway RSS at full table | %.1f MB |\n", rssReady)
	fmt.Printf("| gateway RSS after %v steady state | %.1f MB |\n", settle, rssMB(gw.pid()))
	fmt.Printf("| requests to Consul, steady state | %.1f /s |\n", steady)
	fmt.Printf("| HTTP connections held to Consul | %d |\n", meter.open())
}
