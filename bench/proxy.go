package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const benchRoute = `route "bench" {
  path_prefix = "/"
  service     = "bench"
}
`

// Reference figures from the issue, measured on our machines in this set-up.
const references = `Reference (same set-up, our machines): CPU/request nginx 10.7 µs, HAProxy 11.7, Traefik v3.6 41, Caddy v2.11 57, Fabio v1.7 57; Go upstream 6.9 µs/request served. p99 at 32 connections: nginx 1.7 ms, Traefik 6 ms. RSS under load: nginx 6 MB, Fabio 30 MB, Caddy 58 MB, Traefik 144 MB.`

func proxyBench(dir string, bin binaries, dur time.Duration, conns int, out string) {
	proxyCPU, loadCPU := cpus()
	client, consulAddr := startConsul(dir)
	ports, ups := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", benchRoute)
	gw, gwAddr, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU)
	waitRoutes(admin, 1, 3)
	ngx, ngxAddr := startNginx(dir, ports, proxyCPU)

	results := []result{
		runWrk("direct (one upstream)", fmt.Sprintf("http://127.0.0.1:%d/", ports[0]), ups[0].pid(), loadCPU, conns, dur),
		runWrk("nginx", "http://"+ngxAddr+"/api/bench", ngx.pid(), loadCPU, conns, dur),
		runWrk("gateway", "http://"+gwAddr+"/api/bench", gw.pid(), loadCPU, conns, dur),
	}
	results[0].measuredProc = "upstream"
	results[1].measuredProc, results[2].measuredProc = "nginx", "gateway"
	rep := report(results, dur, conns)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(rep), 0o644))
}

// startNginx runs nginx as one pinned process (no master) with keep-alive
// to the same three upstreams: the reference a Go proxy is measured against.
func startNginx(dir string, ports []int, cpu string) (*proc, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	path := writeNginxConf(dir, "nginx", ports, addr+";")
	p := start(dir, "nginx", cpu, nil, "nginx", "-c", path)
	waitHTTP("http://"+addr+"/", 200)
	return p, addr
}

// writeNginxConf writes dir/name.conf: one nginx worker proxying to ports
// over keep-alive connections, listening as listen says (an address and
// its terminating ';', plus any ssl directives), and returns its path. The
// plain and TLS benchmarks run the same proxy so only TLS differs.
func writeNginxConf(dir, name string, ports []int, listen string) string {
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "    server 127.0.0.1:%d;\n", p)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/%[4]s.pid;
error_log %[1]s/%[4]s-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  upstream bench {
%[2]s    keepalive 64;
  }
  server {
    listen %[3]s
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, servers.String(), listen, name)
	path := filepath.Join(dir, name+".conf")
	must(os.WriteFile(path, []byte(conf), 0o644))
	return path
}

func report(rs []result, dur time.Duration, conns int) string {
	var b strings.Builder
	direct, ngx, gw := rs[0], rs[1], rs[2]
	fmt.Fprintf(&b, "# Proxy benchmark\n\n%s, %d CPUs, %s. Each proxy pinned to CPU 0 (Go with GOMAXPROCS=1), wrk and the three upstreams on CPU 1; `wrk -t1 -c%d -d%s`, after a 2 s warm-up. CPU/request is the measured process's user+system time from /proc/PID/stat divided by the requests wrk completed.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), conns, dur)
	fmt.Fprintf(&b, "| target | measured process | req/s | p50 | p99 | CPU/request | RSS idle | RSS load | CPU vs nginx | p99 vs nginx |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %.1f µs | %.1f MB | %.1f MB | %.2f× | %.2f× |\n",
			r.name, r.measuredProc, r.rps, r.p50, r.p99, us(r.cpuPerReq), r.rssIdle, r.rssLoad,
			float64(r.cpuPerReq)/float64(ngx.cpuPerReq), float64(r.p99)/float64(ngx.p99))
	}
	_ = direct
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&b, "\n## Targets\n\n| target | measured | status |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| proxy CPU/request ≤ 25 µs | %.1f µs | %s |\n", us(gw.cpuPerReq), mark(us(gw.cpuPerReq) <= 25))
	fmt.Fprintf(&b, "| proxy CPU/request ≤ 2.5× nginx | %.2f× | %s |\n", float64(gw.cpuPerReq)/float64(ngx.cpuPerReq), mark(float64(gw.cpuPerReq) <= 2.5*float64(ngx.cpuPerReq)))
	fmt.Fprintf(&b, "| p99 ≤ 2× nginx | %.2f× (%s vs %s) | %s |\n", float64(gw.p99)/float64(ngx.p99), gw.p99, ngx.p99, mark(gw.p99 <= 2*ngx.p99))
	fmt.Fprintf(&b, "| RSS under load ≤ 30 MB | %.1f MB | %s |\n", gw.rssLoad, mark(gw.rssLoad <= 30))
	fmt.Fprintf(&b, "| RSS idle ≤ 20 MB | %.1f MB | %s |\n", gw.rssIdle, mark(gw.rssIdle <= 20))
	fmt.Fprintf(&b, "\n%s\n", references)
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
