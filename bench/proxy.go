package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

const benchRoute = `route "bench" {
  path_prefix = "/"
  service     = "bench"
}
`

// Reference figures from issue 15, measured side by side on our machines
// in this set-up (each proxy on one core, wrk -c32).
const references = `Reference (issue 15, one run, each proxy on one core, wrk -c32): CPU/request nginx 27.9–30.1 µs, Traefik v3.6 68.0–69.9 µs, gateway before this work 59.8–65.0 µs (access log off) and 70.7–73.5 µs (on). p99: nginx 3.4–3.8 ms, Traefik 7.3–9.0 ms. RSS: nginx 6 MB, Traefik 143 MB, gateway 20 MB.`

// proxyOptions are the proxy mode's flags.
type proxyOptions struct {
	dur      time.Duration
	conns    int
	out      string
	profile  string // non-empty: take a CPU profile named so (bench/results/profile-NAME.txt)
	baseline string // non-empty: a gateway binary to measure too, for a before/after in one run
	traefik  string // non-empty: a Traefik binary to measure too (bench/build-traefik.sh builds one)
	rounds   int    // measurements of every target, in turn
}

func proxyBench(dir string, bin binaries, o proxyOptions) {
	proxyCPU, loadCPU := cpus()
	client, consulAddr := startConsul(dir)
	ports, ups := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", benchRoute)

	// Every target is started once and stays up, idle but for its turn:
	// the rounds below measure them in turn, so machine noise that comes
	// and goes lands on every target alike.
	var targets []target
	add := func(name, proc, url string, p *proc) {
		targets = append(targets, target{name: name, proc: proc, url: url, p: p})
	}
	add("direct (one upstream)", "upstream", fmt.Sprintf("http://127.0.0.1:%d/", ports[0]), ups[0])
	ngx, ngxAddr := startNginx(dir, ports, proxyCPU)
	add(rowNginx, "nginx", "http://"+ngxAddr+"/api/bench", ngx)
	if o.traefik != "" {
		tr, trAddr := startTraefik(dir, o.traefik, ports, proxyCPU)
		add(rowTraefik, "traefik", "http://"+trAddr+"/api/bench", tr)
	}
	// The floor: the least a proxy on net/http's server does, over each
	// upstream client (see bench/floor).
	upstreams := make([]string, len(ports))
	for i, p := range ports {
		upstreams[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	for _, client := range []string{"nethttp", "h1"} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort())
		fl := start(dir, "floor-"+client, proxyCPU, []string{"GOMAXPROCS=1"}, bin.floor, "-listen", addr, "-client", client, "-upstreams", strings.Join(upstreams, ","))
		waitHTTP("http://"+addr+"/api/bench", 200)
		add(floorName+client, "floor", "http://"+addr+"/api/bench", fl)
	}
	if o.baseline != "" {
		gw, gwAddr, admin := startGatewayEnv(dir, "gateway-baseline", o.baseline, consulAddr, proxyCPU, nil)
		waitRoutes(admin, 1, 3)
		add(rowBaseline, "baseline", "http://"+gwAddr+"/api/bench", gw)
	}
	// The gateway twice, access log off and on; the access log goes to
	// a file as it would in production.
	gwBin := bin.gateway
	var env []string
	prof := ""
	if o.profile != "" {
		gwBin = buildProfiling(dir)
		prof = filepath.Join(dir, "gateway.cpu.pprof")
		env = []string{"GATEWAY_CPUPROFILE=" + prof}
	}
	gw, gwAddr, admin := startGatewayEnv(dir, "gateway", gwBin, consulAddr, proxyCPU, env)
	waitRoutes(admin, 1, 3)
	add(rowOff, "gateway", "http://"+gwAddr+"/api/bench", gw)
	gwLog, gwLogAddr, adminLog := startGatewayEnv(dir, "gateway-accesslog", bin.gateway, consulAddr, proxyCPU, nil, "-access-log=true")
	waitRoutes(adminLog, 1, 3)
	add(rowOn, "gateway", "http://"+gwLogAddr+"/api/bench", gwLog)

	rounds := make([][]result, max(o.rounds, 1))
	for n := range rounds {
		for _, t := range targets {
			var begin, end func()
			if prof != "" && t.name == rowOff && n == len(rounds)-1 {
				// The profile covers the last round's load.
				begin, end = func() { sendSignal(gw, syscall.SIGUSR1) }, func() { sendSignal(gw, syscall.SIGUSR2) }
			}
			r := runWrkAround(t.name, t.url, t.p.pid(), loadCPU, o.conns, o.dur, begin, end)
			r.measuredProc = t.proc
			rounds[n] = append(rounds[n], r)
		}
	}
	if prof != "" {
		waitProfile(prof)
	}

	rep := report(rounds, o.dur, o.conns)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(o.out), 0o755))
	must(os.WriteFile(o.out, []byte(rep), 0o644))
	if prof != "" {
		writeProfileTop(prof, gwBin, filepath.Join(filepath.Dir(o.out), "profile-"+o.profile+".txt"), rep)
	}
}

// target is one proxy (or the direct backend) the proxy run measures.
type target struct {
	name, proc, url string
	p               *proc
}

// buildProfiling builds the gateway with the benchprofile tag (see
// main_benchprofile.go): signals start and stop a CPU profile.
func buildProfiling(dir string) string {
	out := filepath.Join(dir, "gateway-profiling")
	cmd := exec.Command("go", "build", "-tags", "benchprofile", "-o", out, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	must(cmd.Run())
	return out
}

func sendSignal(p *proc, s syscall.Signal) { must(p.cmd.Process.Signal(s)) }

// writeProfileTop writes the profile's 25 heaviest functions (flat and
// cumulative) to out, headed by the run's figures.
func writeProfileTop(prof, bin, out, rep string) {
	flat, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", bin, prof).CombinedOutput()
	must(err)
	cum, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=25", bin, prof).CombinedOutput()
	must(err)
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profile of the gateway (access log off, GOMAXPROCS=1) during the measured load of this run:\n\n%s\n== top 25 by flat time ==\n%s\n== top 25 by cumulative time ==\n%s", rep, flat, cum)
	must(os.WriteFile(out, []byte(b.String()), 0o644))
}

// waitProfile waits for the profile the gateway flushes on SIGUSR2 to be
// complete; the gateway must not be stopped before, or it may exit with
// the file still empty.
func waitProfile(prof string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := os.Stat(prof); err == nil && st.Size() > 0 {
			if exec.Command("go", "tool", "pprof", "-raw", prof).Run() == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("no complete CPU profile at %s", prof)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// startTraefik runs Traefik like nginx: one process pinned to cpu
// (GOMAXPROCS=1), the file provider routing every path to the upstreams
// round robin over kept-alive connections, access log and metrics off.
func startTraefik(dir, bin string, ports []int, cpu string) (*proc, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "          - url: \"http://127.0.0.1:%d\"\n", p)
	}
	dynamic := filepath.Join(dir, "traefik-dynamic.yml")
	must(os.WriteFile(dynamic, []byte(fmt.Sprintf(`http:
  routers:
    bench:
      rule: "PathPrefix(`+"`/`"+`)"
      service: bench
      entryPoints: [web]
  services:
    bench:
      loadBalancer:
        servers:
%s`, servers.String())), 0o644))
	p := start(dir, "traefik", cpu, []string{"GOMAXPROCS=1"}, bin,
		"--entryPoints.web.address="+addr, "--providers.file.filename="+dynamic,
		"--log.level=ERROR", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
		"--serversTransport.maxIdleConnsPerHost=256")
	waitHTTP("http://"+addr+"/api/bench", 200)
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

// floorName starts the names of the floor rows; the client follows.
const floorName = "floor: net/http server, client "

// Row names report finds its figures by.
const (
	rowNginx    = "nginx"
	rowOff      = "gateway, access log off"
	rowOn       = "gateway, access log on"
	rowBaseline = "baseline gateway, access log off"
	rowTraefik  = "Traefik"
)

// row is the result named name in rs; ok false when the run had none.
func row(rs []result, name string) (result, bool) {
	for _, r := range rs {
		if r.name == name {
			return r, true
		}
	}
	return result{}, false
}

// ratio is a figure of target name against nginx's in the same round:
// the median over rounds, with the lowest and highest.
type ratio struct{ med, lo, hi float64 }

func ratios(rounds [][]result, name string, of func(result) float64) ratio {
	var vs []float64
	for _, rs := range rounds {
		r, ok := row(rs, name)
		ngx, _ := row(rs, rowNginx)
		if ok && of(ngx) > 0 {
			vs = append(vs, of(r)/of(ngx))
		}
	}
	return spread(vs)
}

// spread is the median, lowest and highest of vs.
func spread(vs []float64) ratio {
	if len(vs) == 0 {
		return ratio{}
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return ratio{med: med, lo: vs[0], hi: vs[len(vs)-1]}
}

func (r ratio) String() string {
	if r.lo == r.hi {
		return fmt.Sprintf("%.2f×", r.med)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", r.med, r.lo, r.hi)
}

// median is target name's round with the median CPU per request.
func median(rounds [][]result, name string) result {
	var rs []result
	for _, round := range rounds {
		if r, ok := row(round, name); ok {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.cpuPerReq, b.cpuPerReq) })
	return rs[len(rs)/2]
}

func cpuOf(r result) float64 { return float64(r.cpuPerReq) }
func p99Of(r result) float64 { return float64(r.p99) }

func report(rounds [][]result, dur time.Duration, conns int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Proxy benchmark\n\n%s, %d CPUs, %s, load average %s before the run. Each proxy pinned to CPU 0 (Go with GOMAXPROCS=1), wrk and the three upstreams on CPU 1; every target started once and measured in turn, %d round(s) of `wrk -t1 -c%d -d%s` each after a 2 s warm-up. CPU/request is the measured process's user+system time from /proc/PID/stat divided by the requests wrk completed. Each row is the target's median round (by CPU/request); the ratios are medians over rounds of the target against nginx in the same round, with the lowest and highest in brackets.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), loadAvg(), len(rounds), conns, dur)
	fmt.Fprintf(&b, "| target | measured process | req/s | p50 | p99 | CPU/request | RSS idle | RSS load | CPU vs nginx | p99 vs nginx |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, first := range rounds[0] {
		r := median(rounds, first.name)
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %.1f µs | %.1f MB | %.1f MB | %s | %s |\n",
			r.name, r.measuredProc, r.rps, r.p50, r.p99, us(r.cpuPerReq), r.rssIdle, r.rssLoad,
			ratios(rounds, r.name, cpuOf), ratios(rounds, r.name, p99Of))
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	cpuRatio := ratios(rounds, rowOff, cpuOf)
	p99Ratio := ratios(rounds, rowOff, p99Of)
	var logCosts []float64
	var rss float64
	for _, rs := range rounds {
		off, _ := row(rs, rowOff)
		on, _ := row(rs, rowOn)
		logCosts = append(logCosts, cpuOf(on)/cpuOf(off)-1)
		rss = max(rss, off.rssLoad, on.rssLoad)
	}
	logCost := spread(logCosts)
	fmt.Fprintf(&b, "\n## Targets (issue 15)\n\n| target | measured (median over rounds) | status |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| CPU/request ≤ 1.6× nginx, access log off | %s | %s |\n", cpuRatio, mark(cpuRatio.med <= 1.6))
	fmt.Fprintf(&b, "| access log adds ≤ 10 %% | %+.1f %% (%+.1f to %+.1f) | %s |\n", 100*logCost.med, 100*logCost.lo, 100*logCost.hi, mark(logCost.med <= 0.10))
	fmt.Fprintf(&b, "| p99 at %d connections ≤ 1.5× nginx | %s | %s |\n", conns, p99Ratio, mark(p99Ratio.med <= 1.5))
	fmt.Fprintf(&b, "| RSS under load ≤ 30 MB | %.1f MB (highest) | %s |\n", rss, mark(rss <= 30))
	if _, ok := row(rounds[0], floorName+"h1"); ok {
		fl := ratios(rounds, floorName+"h1", cpuOf)
		var vs []float64
		for _, rs := range rounds {
			f, _ := row(rs, floorName+"h1")
			off, _ := row(rs, rowOff)
			vs = append(vs, cpuOf(off)/cpuOf(f))
		}
		fmt.Fprintf(&b, "\nThe floor (bench/floor: net/http's server and the h1 client, nothing else) costs %s nginx's CPU per request here; the gateway costs %s the floor's, the price of its routing, policies, header hygiene and observability.\n", fl, spread(vs))
	}
	if _, ok := row(rounds[0], rowTraefik); ok {
		var cpu, p99 []float64
		var trRSS float64
		for _, rs := range rounds {
			tr, _ := row(rs, rowTraefik)
			off, _ := row(rs, rowOff)
			cpu, p99 = append(cpu, cpuOf(off)/cpuOf(tr)), append(p99, p99Of(off)/p99Of(tr))
			trRSS = max(trRSS, tr.rssLoad)
		}
		fmt.Fprintf(&b, "\nAgainst Traefik in this run (its access log off too; median over rounds): CPU/request %s, p99 %s, RSS under load %.1f vs %.1f MB (highest).\n",
			spread(cpu), spread(p99), rss, trRSS)
	}
	if _, ok := row(rounds[0], rowBaseline); ok {
		var cpu, p99 []float64
		for _, rs := range rounds {
			base, _ := row(rs, rowBaseline)
			off, _ := row(rs, rowOff)
			cpu, p99 = append(cpu, cpuOf(off)/cpuOf(base)), append(p99, p99Of(off)/p99Of(base))
		}
		fmt.Fprintf(&b, "\nAgainst the baseline gateway in this run (access log off; median over rounds): CPU/request %s, p99 %s.\n", spread(cpu), spread(p99))
	}
	fmt.Fprintf(&b, "\n%s\n", references)
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
