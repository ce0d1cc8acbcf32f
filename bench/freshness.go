package main

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
)

// freshnessBench measures how fast changes in Consul reach traffic: from
// the write to the first request that sees it, over many changes.
func freshnessBench(dir string, bin binaries, changes int) {
	proxyCPU, _ := cpus()
	client, consulAddr := startConsul(dir)
	ports, _ := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "fresh", fmt.Sprintf("fresh-%d", i+1), p, true)
	}
	putKV(client, "gateway/routes/base.hcl", `route "base" {
  path_prefix = "/base"
  service     = "fresh"
}
`)
	_, gwAddr, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU)
	waitRoutes(admin, 1, 3)

	var kv []time.Duration
	for i := range changes {
		path := fmt.Sprintf("/kv-%d", i)
		doc := fmt.Sprintf("route %q {\n  path_prefix = %q\n  service = \"fresh\"\n}\n", fmt.Sprintf("kv-%d", i), path)
		start := time.Now()
		putKV(client, "gateway/routes/kv.hcl", doc)
		pollUntil(func() bool { return status("http://"+gwAddr+path) == 200 })
		kv = append(kv, time.Since(start))
	}

	var health []time.Duration
	for i := range changes {
		id := fmt.Sprintf("fresh-%d", i%3+1)
		// Consul knows once UpdateTTL returns; measure from there.
		must(client.Agent().UpdateTTL("ttl-"+id, "bench", api.HealthCritical))
		start := time.Now()
		pollUntil(func() bool { return routesReady(admin, 2, 2) })
		health = append(health, time.Since(start))
		must(client.Agent().UpdateTTL("ttl-"+id, "bench", api.HealthPassing))
		pollUntil(func() bool { return routesReady(admin, 2, 3) })
	}
	fmt.Printf("# Freshness (%d changes each)\n\n| change | p50 | p99 | max |\n|---|---:|---:|---:|\n", changes)
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"KV write -> new route served", kv}, {"health critical (Consul knows) -> instance excluded", health}} {
		p50, p99, max := pct(m.d, 50), pct(m.d, 99), slices.Max(m.d)
		fmt.Printf("| %s | %s | %s | %s |\n", m.name, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), max.Round(10*time.Microsecond))
	}
}

func pollUntil(cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			fail("change not seen within 30 s")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
