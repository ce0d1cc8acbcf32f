package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// startConsul runs a dev agent on free ports and returns a client for it.
// The per-client connection limit is raised: every long poll is one
// connection from the same loopback address, and with per-service health
// watches a large table holds many.
func startConsul(dir string) (*api.Client, string) {
	client, addr, _ := startConsulLimits(dir, "limits { http_max_conns_per_client = 4096 }\n")
	return client, addr
}

// startConsulLimits is startConsul with limits (HCL, empty for Consul's
// defaults) in its configuration; it also returns the agent's process,
// whose CPU the scale run reads.
func startConsulLimits(dir, limits string) (*api.Client, string, *proc) {
	http := freePort()
	cfg := fmt.Sprintf(`ports { http = %d, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = %d, server = %d }
%slog_level = "warn"
`, http, freePort(), freePort(), freePort(), limits)
	path := filepath.Join(dir, "consul.hcl")
	must(os.WriteFile(path, []byte(cfg), 0o644))
	p := start(dir, "consul", "", nil, "consul", "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file", path)
	addr := "127.0.0.1:" + strconv.Itoa(http)
	waitHTTP("http://"+addr+"/v1/status/leader", 200)
	client, err := api.NewClient(&api.Config{Address: addr})
	must(err)
	// /v1/status/leader answers 200 with "" until a leader is elected.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if leader, _ := client.Status().Leader(); leader != "" {
			return client, addr, p
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("consul elected no leader within 60 s; see %s/consul.log", dir)
	return nil, "", nil
}

// register puts one instance in Consul; with ttl it gets a TTL check that
// starts passing, so the caller can flip its health instantly.
func register(c *api.Client, service, id string, port int, ttl bool) {
	reg := &api.AgentServiceRegistration{ID: id, Name: service, Address: "127.0.0.1", Port: port}
	if ttl {
		reg.Check = &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "1h", Status: api.HealthPassing}
	}
	must(c.Agent().ServiceRegister(reg))
}

func putKV(c *api.Client, key, value string) {
	_, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil)
	must(err)
}
