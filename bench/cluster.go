package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clusterRPS and clusterBurst are the fleet-wide limit of the cluster
// mode's route: well below what three gateways on one core serve, so the
// limit, not the CPU, decides what is accepted.
const (
	clusterRPS   = 600
	clusterBurst = 60
)

var clusterRoute = fmt.Sprintf(`route "bench" {
  path_prefix = "/"
  service     = "bench"
  rate_limit {
    requests_per_second = %d
    burst               = %d
    scope               = "cluster"
  }
}
`, clusterRPS, clusterBurst)

// reWrkTime is the time wrk measured its requests over.
var reWrkTime = regexp.MustCompile(`\d+ requests in ([\d.]+)(ms|s|m)`)

// clusterPhase is one load run against several replicas at once.
type clusterPhase struct {
	name               string
	replicas           int
	requests, accepted int64
	seconds            float64 // wrk's own measured window, longest of the runs
	acceptedPerSecond  float64
	convergedAfter     time.Duration // for the phase after a kill
	offeredPerSecond   float64
}

// clusterBench runs three registered gateways on one Consul with a route
// limited for the fleet, loads all three with wrk at once, kills one with
// SIGKILL and loads the other two: accepted rate against the limit, and
// how long the survivors took to count two replicas.
func clusterBench(dir string, bin binaries, dur time.Duration, conns int, out string) {
	proxyCPU, loadCPU := cpus()
	client, consulAddr := startConsul(dir)
	ports, _ := startUpstreams(dir, bin.upstream, 1)
	register(client, "bench", "bench-1", ports[0], false)
	putKV(client, "gateway/routes/bench.hcl", clusterRoute)
	type gw struct {
		p            *proc
		listen, admn string
	}
	var gws []gw
	for range 3 {
		p, listen, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU, "-register", "-service-name", "gw-bench")
		waitRoutes(admin, 1, 1)
		gws = append(gws, gw{p, listen, admin})
	}
	waitReplicas := func(set []gw, want int) time.Duration {
		start := time.Now()
		for time.Since(start) < 60*time.Second {
			ok := true
			for _, g := range set {
				if replicasOf(g.admn) != want {
					ok = false
				}
			}
			if ok {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fail("replicas did not converge on %d", want)
		return 0
	}
	waitReplicas(gws, 3)
	perConn := max(1, conns/3)
	phase := func(name string, set []gw) clusterPhase {
		var urls []string
		for _, g := range set {
			urls = append(urls, "http://"+g.listen+"/x")
		}
		// The warm-up also empties every bucket, so the measured window
		// starts with no burst in hand.
		loadAll(urls, loadCPU, perConn, 2*time.Second)
		ph := clusterPhase{name: name, replicas: len(set)}
		for _, r := range loadAll(urls, loadCPU, perConn, dur) {
			ph.requests += r.requests
			ph.accepted += r.requests - r.non2xx
			ph.seconds = max(ph.seconds, r.seconds)
		}
		ph.acceptedPerSecond = float64(ph.accepted) / ph.seconds
		ph.offeredPerSecond = float64(ph.requests) / ph.seconds
		return ph
	}
	phases := []clusterPhase{phase("three replicas", gws)}
	must(syscall.Kill(gws[2].p.pid(), syscall.SIGKILL))
	conv := waitReplicas(gws[:2], 2)
	ph := phase("two replicas, after SIGKILL of the third", gws[:2])
	ph.convergedAfter = conv
	phases = append(phases, ph)

	rep := clusterReport(phases, dur, perConn)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(rep), 0o644))
}

// wrkCount is what one wrk run counted.
type wrkCount struct {
	requests, non2xx int64
	seconds          float64
}

// loadAll runs one wrk per url at once, each with conns connections for
// d, pinned to cpu, and returns their counts; 429s are expected here.
func loadAll(urls []string, cpu string, conns int, d time.Duration) []wrkCount {
	res := make([]wrkCount, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			args := []string{"-c", cpu, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", max(1, int(d.Seconds()))), u}
			outb, err := exec.Command("taskset", args...).CombinedOutput()
			if err != nil {
				fail("wrk %s: %v\n%s", u, err, outb)
			}
			s := string(outb)
			c := wrkCount{requests: atoi(find(reRequests, s, 1)), non2xx: atoi(find(reNon2xx, s, 1))}
			if m := reWrkTime.FindStringSubmatch(s); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				c.seconds = v * map[string]float64{"ms": 1e-3, "s": 1, "m": 60}[m[2]]
			}
			if c.requests == 0 || c.seconds == 0 {
				fail("wrk %s measured nothing:\n%s", u, s)
			}
			res[i] = c
		})
	}
	wg.Wait()
	return res
}

// replicasOf reads gateway_cluster_replicas from a gateway's /metrics; -1
// when it cannot.
func replicasOf(admin string) int {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "gateway_cluster_replicas "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return int(n)
		}
	}
	return -1
}

func clusterReport(phases []clusterPhase, dur time.Duration, conns int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Cluster rate-limit benchmark\n\n%s UTC, %d CPUs, %s, load average %s. Three gateways registered in one Consul dev agent (`-register -service-name gw-bench`), all pinned to CPU 0 (GOMAXPROCS=1 each); one route with `rate_limit { requests_per_second = %d, burst = %d, scope = \"cluster\" }` keyed by client IP. One `wrk -t1 -c%d -d%ds` per replica at once, on CPU 1, after a 2 s warm-up that empties the buckets; accepted = requests − non-2xx (429), over wrk's own measured window. Then one replica is killed with SIGKILL (no deregistration: its check must fail) and the two left are loaded the same way once both count 2 replicas.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), runtime.Version(), loadAvg(), clusterRPS, clusterBurst, conns, int(dur.Seconds()))
	b.WriteString("| phase | replicas | offered req/s | accepted req/s | accepted / limit | replicas converged after kill |\n|---|---:|---:|---:|---:|---:|\n")
	for _, p := range phases {
		conv := "–"
		if p.convergedAfter > 0 {
			conv = p.convergedAfter.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.1f | %.3f | %s |\n", p.name, p.replicas, p.offeredPerSecond, p.acceptedPerSecond, p.acceptedPerSecond/clusterRPS, conv)
	}
	b.WriteString("\nThe window admits at most `limit × window + burst`; with the buckets emptied by the warm-up, the accepted rate is the limit within the rounding of each replica's share (burst ÷ N rounded down). The convergence time is the self-registration check's interval (2 s) plus its timeout (1 s) at worst, plus one blocking query; a replica stopped with SIGTERM deregisters and the others follow within the query's round trip. See docs/policies.md, \"Cluster rate limits\", for the error bounds.\n")
	return b.String()
}
