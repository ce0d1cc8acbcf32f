package e2e

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/freeport"

	"github.com/gatewayco/gateway/internal/connecttest"
	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// meshHandler answers with the instance's ID, as startBackend does.
func meshHandler(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": id, "path": r.URL.Path})
	})
}

func connectRoute(name, prefix, service string) string {
	return fmt.Sprintf("route %q {\n  path_prefix = %q\n  service     = %q\n  connect     = true\n}\n", name, prefix, service)
}

// getError sends one request and returns its status and JSON error body.
func getError(t *testing.T, p *gatewayProc, path string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(p.url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body := map[string]string{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func setIntention(t *testing.T, client *api.Client, src, dst string, action api.IntentionAction) {
	t.Helper()
	if _, err := client.Connect().IntentionUpsert(&api.Intention{SourceName: src, DestinationName: dst, Action: action}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestConnectNativeUpstreamUnderIntentions: a connect route reaches a
// Connect-native upstream with mTLS (the upstream checks the gateway's
// certificate and asks the agent's authorize); a deny intention turns it
// into a 403 naming the route and service, which neither ejects the
// instance nor counts as an upstream error; an allow serves again.
func TestConnectNativeUpstreamUnderIntentions(t *testing.T) {
	client, addr := startConsul(t)
	native := connecttest.StartNative(t, client, "mesh-api", "mesh-api-1", meshHandler("mesh-api-1"))
	putRoute(t, client, "mesh.hcl", connectRoute("mesh", "/mesh", "mesh-api"))
	gw := startGateway(t, addr, "-connect", "-connect-service", "edge")

	testkit.WaitFor(t, "served through the mesh", func() bool {
		code, inst := getInstance(t, gw, "/mesh/x")
		return code == http.StatusOK && inst == "mesh-api-1"
	})
	if c := native.LastClient.Load(); c == nil || len(c.URIs) == 0 || !strings.HasSuffix(c.URIs[0].String(), "/svc/edge") {
		t.Fatalf("upstream saw client certificate %v, want the gateway's edge identity", c)
	}
	rs := getRoutes(t, gw).Routes
	if len(rs) != 1 || !rs[0].Connect || len(rs[0].Instances) != 1 {
		t.Fatalf("/routes: %+v, want the mesh route with connect and one instance", rs)
	}

	setIntention(t, client, "edge", "mesh-api", api.IntentionActionDeny)
	changed := time.Now()
	var body map[string]string
	testkit.WaitFor(t, "403 after the deny intention", func() bool {
		var code int
		code, body = getError(t, gw, "/mesh/x")
		return code == http.StatusForbidden
	})
	t.Logf("403 %s after the deny intention was written", time.Since(changed).Round(time.Millisecond))
	if body["route"] != "mesh" || !strings.Contains(body["error"], `"mesh-api"`) || !strings.Contains(body["error"], "intention") {
		t.Fatalf("403 body %v, want the route and service named", body)
	}
	for range 20 {
		if code, _ := getError(t, gw, "/mesh/x"); code != http.StatusForbidden {
			t.Fatalf("denied request answered %d", code)
		}
	}
	fams := scrape(t, gw)
	if n := sample(fams, "gateway_connect_denied_requests_total", "route=mesh"); n < 20 {
		t.Errorf("denied requests counted %v, want at least 20", n)
	}
	if n := sample(fams, "gateway_upstream_errors_total", "service=mesh-api+connect"); n > 0 {
		t.Errorf("denied requests counted as %v upstream errors", n)
	}
	if rs := getRoutes(t, gw).Routes; len(rs) != 1 || len(rs[0].Instances) != 1 || rs[0].Instances[0].Ejected {
		t.Fatalf("after denials /routes shows %+v, want the instance kept and not ejected", rs)
	}

	setIntention(t, client, "edge", "mesh-api", api.IntentionActionAllow)
	testkit.WaitFor(t, "served again after the allow intention", func() bool {
		code, inst := getInstance(t, gw, "/mesh/x")
		return code == http.StatusOK && inst == "mesh-api-1"
	})
}

// TestConnectIdentityMismatchIs502: an instance listed under the route's
// service that presents another service's certificate is refused with a
// 502, a log line naming both identities, and a handshake failure counted
// as identity_mismatch.
func TestConnectIdentityMismatchIs502(t *testing.T) {
	client, addr := startConsul(t)
	connecttest.StartNativeAs(t, client, "billing", "mesh-api", "billing-1", meshHandler("billing-1"), true)
	putRoute(t, client, "billing.hcl", connectRoute("billing", "/billing", "billing"))
	gw := startGateway(t, addr, "-connect", "-connect-service", "edge")

	testkit.WaitFor(t, "route has the instance", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 1
	})
	code, body := getError(t, gw, "/billing/x")
	if code != http.StatusBadGateway || body["route"] != "billing" {
		t.Fatalf("impostor answered %d %v, want 502", code, body)
	}
	if n := sample(scrape(t, gw), "gateway_connect_handshake_failures_total", "service=billing", "reason=identity_mismatch"); n < 1 {
		t.Errorf("identity_mismatch failures %v, want at least 1", n)
	}
	testkit.WaitFor(t, "log names the mismatch", func() bool {
		txt := gw.logText()
		return strings.Contains(txt, "its identity is not the route's service") && strings.Contains(txt, "/svc/billing")
	})
}

// TestConnectCARotationUnderLoad: a new Connect CA root (the built-in
// provider with a new key type, which makes Consul generate a new root and
// cross-sign it) under load fails no request, and the gateway moves to a
// leaf certificate of the new root without a restart. The upstream turns
// keep-alives off, so every request is a fresh mTLS handshake on both
// sides throughout the rotation.
func TestConnectCARotationUnderLoad(t *testing.T) {
	client, addr := startConsul(t)
	native := connecttest.StartNativeAs(t, client, "mesh-api", "mesh-api", "mesh-api-1", meshHandler("mesh-api-1"), false)
	putRoute(t, client, "mesh.hcl", connectRoute("mesh", "/mesh", "mesh-api"))
	gw := startGateway(t, addr, "-connect", "-connect-service", "edge")
	testkit.WaitFor(t, "served through the mesh", func() bool {
		code, _ := getInstance(t, gw, "/mesh/x")
		return code == http.StatusOK
	})
	before, _, err := client.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}

	l := startLoad(t, gw.url("/mesh/x"), 4)
	l.waitProgress(t, 200)
	if _, err := client.Connect().CASetConfig(&api.CAConfig{Provider: "consul", Config: map[string]any{
		"PrivateKeyType": "rsa", "PrivateKeyBits": 2048,
	}}, nil); err != nil {
		t.Fatal(err)
	}
	var active *api.CARoot
	testkit.WaitFor(t, "a new active root", func() bool {
		roots, _, err := client.Agent().ConnectCARoots(nil)
		if err != nil || roots.ActiveRootID == before.ActiveRootID {
			return false
		}
		for _, r := range roots.Roots {
			if r.Active {
				active = r
			}
		}
		return active != nil
	})
	newRoot := parseCert(t, active.RootCertPEM)
	// The agent re-signs leaves after a root change with a random delay of
	// up to 30 s (its CA change jitter window), so allow for that.
	testkit.WaitWithin(t, leafRotationWait, "the gateway presents a leaf of the new root", func() bool {
		c := native.LastClient.Load()
		return c != nil && string(c.AuthorityKeyId) == string(newRoot.SubjectKeyId)
	})
	l.waitProgress(t, 200)
	n := l.finish(t)
	t.Logf("%d requests, none failed, across the rotation", n)
	if f := sample(scrape(t, gw), "gateway_connect_handshake_failures_total"); f > 0 {
		t.Errorf("%v handshake failures during the rotation", f)
	}
}

// leafRotationWait bounds waiting for the agent to re-sign a leaf after a
// root change: its 30 s jitter window plus the usual test margin.
const leafRotationWait = 30*time.Second + testkit.Timeout

func parseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(pemText))
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConnectSidecarProxyUpstream: a plain HTTP service behind Consul's
// built-in sidecar proxy (consul connect proxy -sidecar-for) is reached
// through its proxy with mTLS; a deny intention is a 403.
func TestConnectSidecarProxyUpstream(t *testing.T) {
	client, addr := startConsul(t)
	app := httptest.NewServer(meshHandler("side-api-1"))
	t.Cleanup(app.Close)
	_, appPort, _ := net.SplitHostPort(app.Listener.Addr().String())
	port, _ := strconv.Atoi(appPort)
	proxyPort := freeport.GetOne(t)
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "side-api-1", Name: "side-api", Address: "127.0.0.1", Port: port,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: "127.0.0.1", Port: proxyPort,
			Proxy: &api.AgentServiceConnectProxyConfig{
				LocalServiceAddress: "127.0.0.1", LocalServicePort: port,
				Config: map[string]any{"bind_address": "127.0.0.1", "bind_port": proxyPort},
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(consultest.RequireBinary(t), "connect", "proxy", "-sidecar-for", "side-api-1", "-http-addr", addr, "-log-level", "warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sidecar proxy log:\n%s", logs.String())
		}
	})
	putRoute(t, client, "side.hcl", connectRoute("side", "/side", "side-api"))
	gw := startGateway(t, addr, "-connect", "-connect-service", "edge")

	testkit.WaitFor(t, "served through the sidecar", func() bool {
		code, inst := getInstance(t, gw, "/side/x")
		return code == http.StatusOK && inst == "side-api-1"
	})
	if rs := getRoutes(t, gw).Routes; len(rs) != 1 || len(rs[0].Instances) != 1 || rs[0].Instances[0].Port != proxyPort {
		t.Fatalf("/routes %+v, want the sidecar (port %d) as the one instance", rs, proxyPort)
	}
	setIntention(t, client, "edge", "side-api", api.IntentionActionDeny)
	testkit.WaitFor(t, "403 after the deny intention", func() bool {
		code, body := getError(t, gw, "/side/x")
		return code == http.StatusForbidden && body["route"] == "side"
	})
}

// TestConnectUpstreamRefusalIs403NotAFailure: an upstream that refuses
// the gateway's certificate (here: it trusts no Connect root; an
// intention the gateway has not seen yet does the same) answers 403, and
// the refusals neither eject the instance nor count as upstream errors.
func TestConnectUpstreamRefusalIs403NotAFailure(t *testing.T) {
	client, addr := startConsul(t)
	connecttest.StartDistrusting(t, client, "vault-api", "vault-api-1", meshHandler("vault-api-1"))
	putRoute(t, client, "vault.hcl", connectRoute("vault", "/vault", "vault-api"))
	gw := startGateway(t, addr, "-connect", "-connect-service", "edge")
	testkit.WaitFor(t, "route has the instance", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 1
	})
	for range 20 {
		code, body := getError(t, gw, "/vault/x")
		if code != http.StatusForbidden || body["route"] != "vault" || !strings.Contains(body["error"], "mesh identity") {
			t.Fatalf("refused request answered %d %v, want 403", code, body)
		}
	}
	fams := scrape(t, gw)
	if n := sample(fams, "gateway_connect_handshake_failures_total", "service=vault-api", "reason=refused"); n < 20 {
		t.Errorf("refused handshakes counted %v, want at least 20", n)
	}
	if n := sample(fams, "gateway_upstream_errors_total", "service=vault-api+connect"); n > 0 {
		t.Errorf("refusals counted as %v upstream errors", n)
	}
	if rs := getRoutes(t, gw).Routes; rs[0].Instances[0].Ejected {
		t.Fatal("refusals ejected the instance")
	}
}
