package e2e

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// readmePolicy is the minimal ACL policy as docs/operations.md documents it: the
// first hcl block after its marker, so the tests run with exactly what
// operators are told to grant.
func readmePolicy(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(repoFile("docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "<!-- minimal-acl-policy -->")
	if !ok {
		t.Fatal("docs/operations.md has no <!-- minimal-acl-policy --> marker")
	}
	_, rest, ok = strings.Cut(rest, "```hcl\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/operations.md: no ```hcl block after the minimal-acl-policy marker")
	}
	return block
}

// aclRig is an agent with ACLs (default deny), a "web" backend and a
// route to it, written with the management token.
func aclRig(t *testing.T) (*consultest.Agent, *api.Client) {
	t.Helper()
	agent := consultest.StartWithACL(t, nil)
	admin, err := api.NewClient(&api.Config{Address: agent.HTTPAddr, Token: agent.Token})
	if err != nil {
		t.Fatal(err)
	}
	startBackend(t, admin, "web", "web-1")
	putRoute(t, admin, "web.hcl", routeDoc("web", "/web", "web"))
	return agent, admin
}

// runCheck runs `gateway check` with env and args, returning its output
// and exit code.
func runCheck(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return runCommand(t, env, append([]string{"check"}, args...)...)
}

// runCommand runs the gateway binary with env and args (a subcommand),
// returning its output and exit code.
func runCommand(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(plainGatewayBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("gateway %v: %v", args, err)
	}
	return out.String(), 0
}

// With ACLs on and default deny, a token holding only the documented (docs/operations.md)
// minimal policy serves routes and instances, registers the gateway, and
// passes `gateway check`.
func TestConsulACLMinimalPolicyServes(t *testing.T) {
	t.Parallel()
	agent, admin := aclRig(t)
	token := agent.CreateToken(t, readmePolicy(t))
	env := []string{"CONSUL_HTTP_TOKEN=" + token}
	p := startGatewayWith(t, gatewayStart{env: env}, agent.HTTPAddr, "-register")

	testkit.WaitFor(t, "the route serves web-1", func() bool {
		code, inst := getInstance(t, p, "/web/x")
		return code == http.StatusOK && inst == "web-1"
	})
	if code, body := adminGet(t, p, "/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health = %d %v, want 200 ok", code, body)
	}
	testkit.WaitFor(t, "the gateway registered itself", func() bool {
		svcs, _, err := admin.Catalog().Service("gateway", "", nil)
		return err == nil && len(svcs) == 1
	})
	// The last good version was written under the state prefix.
	testkit.WaitFor(t, "the last good version is shared", func() bool {
		keys, _, err := admin.KV().Keys("gateway/state/lastgood/", "", nil)
		return err == nil && len(keys) == 1
	})

	if out, code := runCommand(t, nil, "health", "-admin", p.admin); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Errorf("gateway health exited %d with %q, want 0 and ok", code, out)
	}
	// Nothing listening: unhealthy.
	if _, code := runCommand(t, nil, "health", "-admin", "127.0.0.1:1"); code != 1 {
		t.Errorf("gateway health of a port nobody serves exited %d, want 1", code)
	}

	out, code := runCheck(t, env, "-consul", agent.HTTPAddr, "-register")
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("gateway check exited %d, want 0 with no FAIL:\n%s", code, out)
	}
	for _, want := range []string{
		"OK   consul at " + agent.HTTPAddr + " reachable",
		`OK   1 route documents under "gateway/routes/" valid: 1 routes`,
		`OK   the token may read service web`,
		`OK   the token may register itself`,
		`OK   the token may share last good documents`,
		`OK   service web: 1 of 1 instances passing`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("gateway check output lacks %q:\n%s", want, out)
		}
	}
}

// A token lacking one permission is named in the log, in /health and by
// `gateway check`, never taken for an empty answer: without service
// read the route has no instances and /health is degraded with the
// reason; without key read there is no table at all and /health says
// why it is still starting.
func TestConsulACLMissingPermissionIsReported(t *testing.T) {
	t.Parallel()
	agent, _ := aclRig(t)
	cases := []struct {
		name, drop string // the line of the documented policy left out
		healthCode int
		health     string // status in /health
		reason     string // in /health's reason and the log
		check      string // a FAIL line of gateway check
	}{
		{"no service read", `service_prefix "" { policy = "read" }`, http.StatusOK, "degraded",
			"reading the health of service web", `FAIL service web: the token may not read its instances`},
		{"no key read", `key_prefix "gateway/routes/" { policy = "read" }`, http.StatusServiceUnavailable, "starting",
			`reading KV prefix "gateway/routes/"`, `FAIL the token may not read the route documents under "gateway/routes/"`},
		// Without the line the state prefix can be neither written nor
		// read: /health names whichever refusal came last, the log both.
		{"no state write", `key_prefix "gateway/state/lastgood/" { policy = "write" }`, http.StatusOK, "degraded",
			"gateway/state/lastgood/", `FAIL the token may not share last good documents`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			policy := readmePolicy(t)
			if !strings.Contains(policy, tc.drop) {
				t.Fatalf("documented policy has no line %q", tc.drop)
			}
			token := agent.CreateToken(t, strings.Replace(policy, tc.drop, "", 1))
			env := []string{"CONSUL_HTTP_TOKEN=" + token}
			p := startGatewayWith(t, gatewayStart{env: env, unhealthy: true}, agent.HTTPAddr)

			var body map[string]any
			testkit.WaitFor(t, "/health names the refusal", func() bool {
				var code int
				code, body = adminGet(t, p, "/health")
				reason, _ := body["reason"].(string)
				return code == tc.healthCode && body["status"] == tc.health &&
					strings.Contains(reason, "consul ACLs denied the gateway's token") && strings.Contains(reason, tc.reason)
			})
			if strings.Contains(body["reason"].(string), "unreachable") {
				t.Errorf("/health reason %q calls a refusal unreachable", body["reason"])
			}
			testkit.WaitFor(t, "the log names the refusal", func() bool {
				// The log is JSON: the reason's quotes are escaped.
				log := p.logText()
				return strings.Contains(log, "consul ACLs denied the gateway's token: ") && strings.Contains(log, strings.ReplaceAll(tc.reason, `"`, `\"`))
			})
			if tc.name == "no service read" {
				if code, _ := getInstance(t, p, "/web/x"); code != http.StatusServiceUnavailable {
					t.Errorf("GET /web/x = %d, want 503 (no readable instances)", code)
				}
			}

			// The container health check follows /health: a degraded
			// gateway still serves, one still starting does not.
			wantHealth := map[string]int{"degraded": 0, "starting": 1}[tc.health]
			if out, code := runCommand(t, nil, "health", "-admin", p.admin); code != wantHealth || !strings.Contains(out, tc.health) {
				t.Errorf("gateway health exited %d, want %d naming %s:\n%s", code, wantHealth, tc.health, out)
			}

			out, code := runCheck(t, env, "-consul", agent.HTTPAddr)
			if code != 1 || !strings.Contains(out, tc.check) {
				t.Errorf("gateway check exited %d, want 1 with %q:\n%s", code, tc.check, out)
			}
		})
	}
}

// The gateway reaches an agent that serves its API over HTTPS only, set
// up the way Consul's docs do (consul tls ca create / cert create
// -server), through the standard variables; `gateway check` does too,
// and fails, naming the certificate, without the CA.
func TestConsulHTTPS(t *testing.T) {
	t.Parallel()
	agent := consultest.StartWithTLS(t, nil)
	tlsCfg := api.TLSConfig{CAFile: agent.CACert}
	admin, err := api.NewClient(&api.Config{Address: agent.HTTPSAddr, Scheme: "https", TLSConfig: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	startBackend(t, admin, "web", "web-1")
	putRoute(t, admin, "web.hcl", routeDoc("web", "/web", "web"))

	env := []string{"CONSUL_HTTP_ADDR=" + agent.HTTPSAddr, "CONSUL_HTTP_SSL=true", "CONSUL_CACERT=" + agent.CACert}
	p := startGatewayWith(t, gatewayStart{env: env}, "", "-consul", "")
	testkit.WaitFor(t, "the route serves web-1", func() bool {
		code, inst := getInstance(t, p, "/web/x")
		return code == http.StatusOK && inst == "web-1"
	})
	if code, body := adminGet(t, p, "/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health = %d %v, want 200 ok", code, body)
	}

	out, code := runCheck(t, []string{"CONSUL_HTTP_ADDR=https://" + agent.HTTPSAddr, "CONSUL_CACERT=" + agent.CACert})
	if code != 0 || !strings.Contains(out, "OK   consul at https://"+agent.HTTPSAddr+" reachable") {
		t.Errorf("gateway check exited %d, want 0 and the agent reachable:\n%s", code, out)
	}
	out, code = runCheck(t, []string{"CONSUL_HTTP_ADDR=https://" + agent.HTTPSAddr, "CONSUL_CACERT="})
	if code != 1 || !strings.Contains(out, "FAIL consul at https://"+agent.HTTPSAddr+" unreachable") || !strings.Contains(out, "certificate") {
		t.Errorf("gateway check without the CA exited %d, want 1 naming the certificate:\n%s", code, out)
	}
}
