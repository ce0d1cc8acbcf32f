package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// result is one load run against one target.
type result struct {
	name         string
	requests     int64
	rps          float64
	p50, p99     time.Duration
	cpuPerReq    time.Duration // the measured process's CPU time per request
	rssIdle      float64       // MB before the load
	rssLoad      float64       // MB at the end of the load
	non2xx, errs int64
	measuredProc string
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$`)
)

// runWrk drives a closed-loop load with wrk pinned to cpu and measures the
// CPU time the process pid spent meanwhile.
func runWrk(name, url string, pid int, cpu string, conns int, d time.Duration) result {
	return runWrkWith(name, url, pid, cpu, conns, d)
}

// runWrkWith is runWrk with extra wrk arguments (headers).
func runWrkWith(name, url string, pid int, cpu string, conns int, d time.Duration, extra ...string) result {
	return runWrkAround(name, url, pid, cpu, conns, d, nil, nil, extra...)
}

// runWrkAround is runWrkWith calling begin just before the measured load
// (after the warm-up) and end just after it; nil: nothing. The proxy
// benchmark takes its CPU profiles between the two.
func runWrkAround(name, url string, pid int, cpu string, conns int, d time.Duration, begin, end func(), extra ...string) result {
	// Warm up pools and the JIT-less but cache-hungry Go runtime first.
	warm := append([]string{"-c", cpu, "wrk", "-t1", fmt.Sprintf("-c%d", conns), "-d2s"}, extra...)
	_, _ = exec.Command("taskset", append(warm, url)...).CombinedOutput()
	r := result{name: name, rssIdle: rssMB(pid)}
	if begin != nil {
		begin()
	}
	before := cpuTicks(pid)
	args := append([]string{"-c", cpu, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency"}, extra...)
	out, err := exec.Command("taskset", append(args, url)...).CombinedOutput()
	after := cpuTicks(pid)
	if end != nil {
		end()
	}
	r.rssLoad = rssMB(pid)
	if err != nil {
		fail("wrk %s: %v\n%s", name, err, out)
	}
	s := string(out)
	r.requests = atoi(find(reRequests, s, 1))
	r.rps, _ = strconv.ParseFloat(find(reRPS, s, 1), 64)
	r.non2xx = atoi(find(reNon2xx, s, 1))
	if m := reSockErr.FindStringSubmatch(s); m != nil {
		for _, v := range m[1:] {
			r.errs += atoi(v)
		}
	}
	for _, m := range rePct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		dur := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	if r.requests > 0 {
		r.cpuPerReq = time.Duration(float64(after-before) / clockTick * float64(time.Second) / float64(r.requests))
	}
	if r.requests == 0 || r.non2xx > 0 || r.errs > 0 {
		fail("wrk %s: %d requests, %d non-2xx, %d socket errors:\n%s", name, r.requests, r.non2xx, r.errs, s)
	}
	return r
}

func find(re *regexp.Regexp, s string, group int) string {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return "0"
	}
	return strings.TrimSpace(m[group])
}

func atoi(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
