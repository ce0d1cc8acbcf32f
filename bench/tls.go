package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gatewayco/gateway/internal/devcert"
)

// tlsBench measures HTTPS through the gateway and nginx with the same
// certificate, pinned as in proxy mode: keep-alive requests (requests/s,
// CPU per request), then a new connection, so a full TLS handshake, per
// request (handshakes/s, CPU per handshake).
func tlsBench(dir string, bin binaries, dur time.Duration, conns int, out string) {
	proxyCPU, loadCPU := cpus()
	certFile, keyFile := filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key")
	c, k, err := devcert.Generate(devcert.Options{Names: []string{"localhost", "127.0.0.1"}})
	must(err)
	must(os.WriteFile(certFile, c, 0o644))
	must(os.WriteFile(keyFile, k, 0o600))

	client, consulAddr := startConsul(dir)
	ports, _ := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", benchRoute)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	gw, _, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU, "-tls-listen", tlsAddr, "-tls-cert", certFile, "-tls-key", keyFile)
	waitRoutes(admin, 1, 3)
	ngx, ngxAddr := startNginxTLS(dir, ports, proxyCPU, certFile, keyFile)

	closeHdr := []string{"-H", "Connection: close"}
	rs := []result{
		runWrk("nginx keep-alive", "https://"+ngxAddr+"/api/bench", ngx.pid(), loadCPU, conns, dur),
		runWrk("gateway keep-alive", "https://"+tlsAddr+"/api/bench", gw.pid(), loadCPU, conns, dur),
		runWrkWith("nginx new connection per request", "https://"+ngxAddr+"/api/bench", ngx.pid(), loadCPU, conns, dur, closeHdr...),
		runWrkWith("gateway new connection per request", "https://"+tlsAddr+"/api/bench", gw.pid(), loadCPU, conns, dur, closeHdr...),
	}
	rs[0].measuredProc, rs[1].measuredProc, rs[2].measuredProc, rs[3].measuredProc = "nginx", "gateway", "nginx", "gateway"
	rep := tlsReport(rs, dur, conns)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(rep), 0o644))
}

// startNginxTLS is startNginx terminating TLS with the gateway's
// certificate, TLS 1.2 and 1.3 as the gateway offers, and its session
// cache off: wrk resumes no sessions, so every new connection is a full
// handshake on both servers.
func startNginxTLS(dir string, ports []int, cpu, certFile, keyFile string) (*proc, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	listen := fmt.Sprintf("%s ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3;", addr, certFile, keyFile)
	path := writeNginxConf(dir, "nginx-tls", ports, listen)
	p := start(dir, "nginx-tls", cpu, nil, "nginx", "-c", path)
	waitHTTPS("https://"+addr+"/", 200)
	return p, addr
}

func tlsReport(rs []result, dur time.Duration, conns int) string {
	var b strings.Builder
	ngxKA, gwKA, ngxNew, gwNew := rs[0], rs[1], rs[2], rs[3]
	fmt.Fprintf(&b, "# TLS benchmark\n\n%s, %d CPUs, %s. Same self-signed ECDSA P-256 certificate on both; each server pinned to CPU 0 (Go with GOMAXPROCS=1), wrk and the three upstreams on CPU 1; `wrk -t1 -c%d -d%s` over HTTPS (HTTP/1.1; wrk speaks no HTTP/2), after a 2 s warm-up. \"New connection per request\" sends `Connection: close`, so every request is a full TLS handshake (wrk resumes no sessions). CPU/request is the measured process's user+system time from /proc/PID/stat divided by the requests wrk completed.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), conns, dur)
	fmt.Fprintf(&b, "| target | req/s | p50 | p99 | CPU/request | core busy | req/s per core | RSS load |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		// core busy is the share of its core the server used; below
		// ~90 % the load generator, not the server, set the rate.
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f µs | %.0f %% | %.0f | %.1f MB |\n", r.name, r.rps, r.p50, r.p99, us(r.cpuPerReq),
			r.rps*us(r.cpuPerReq)/1e4, 1e6/us(r.cpuPerReq), r.rssLoad)
	}
	fmt.Fprintf(&b, "\n## Ratios (gateway / nginx)\n\n| measure | ratio |\n|---|---:|\n")
	fmt.Fprintf(&b, "| HTTPS keep-alive requests/s | %.2f× |\n", gwKA.rps/ngxKA.rps)
	fmt.Fprintf(&b, "| HTTPS keep-alive CPU/request | %.2f× |\n", float64(gwKA.cpuPerReq)/float64(ngxKA.cpuPerReq))
	fmt.Fprintf(&b, "| TLS handshakes/s (new connection per request) | %.2f× |\n", gwNew.rps/ngxNew.rps)
	fmt.Fprintf(&b, "| CPU per handshake and request | %.2f× |\n", float64(gwNew.cpuPerReq)/float64(ngxNew.cpuPerReq))
	fmt.Fprintf(&b, "| handshakes per core-second (1 s / CPU per handshake and request) | %.2f× |\n", float64(ngxNew.cpuPerReq)/float64(gwNew.cpuPerReq))
	fmt.Fprintf(&b, "\nCPU per request is the robust figure: wrk does every client handshake on the one load core, beside the upstreams, and on a shared machine the rates move with its load; \"core busy\" says whether a server was the bottleneck. \"req/s per core\" is what the server would sustain with its core to itself.\n")
	return b.String()
}
