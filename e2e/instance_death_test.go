package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// demoProcess is a real demo-service process registered in Consul with an
// HTTP check every 3 s, so the test sees Consul's own failure detection.
// Three seconds, not the demo's one: the test shows outlier ejection
// acting before Consul's check, and a check that happens to run just after
// the kill would otherwise win that race on a slow CI machine (the
// instance leaves the table before it can be seen ejected).
type demoProcess struct {
	id, listen string
	cmd        *exec.Cmd
}

func startDemo(t *testing.T, bin, consulAddr, id, listen string) *demoProcess {
	t.Helper()
	p := &demoProcess{id: id, listen: listen}
	p.cmd = exec.Command(bin, "-name", "users", "-id", id, "-listen", listen, "-consul", consulAddr, "-check-interval", "3s")
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instanceState reads one instance's flags from /routes.
func instanceState(t *testing.T, a *gatewayProc, id string) (listed, passing, ejected bool) {
	t.Helper()
	for _, r := range getRoutes(t, a).Routes {
		for _, in := range r.Instances {
			if in.ID == id {
				return true, in.Passing, in.Ejected
			}
		}
	}
	return false, false, false
}

// TestKilledInstanceUnderLoadLosesNoGET kills one of three real upstream
// processes while 8 clients send GETs: retries hide the failures, outlier
// ejection usually stops traffic to it before Consul's check notices
// (which one came first is logged), and once the process is back and its
// check passes it serves again.
func TestKilledInstanceUnderLoadLosesNoGET(t *testing.T) {
	t.Parallel()
	bin := demoBin(t)
	client, addr := startConsul(t)
	var procs []*demoProcess
	for i := range 3 {
		procs = append(procs, startDemo(t, bin, addr, fmt.Sprintf("users-%d", i+1), freeAddr(t)))
	}
	putRoute(t, client, "users.hcl", `route "users" {
  path_prefix  = "/api/users"
  strip_prefix = "/api"
  service      = "users"
  retries      = 2
}
`)
	a := startGateway(t, addr)
	// Consul's own verdict first, with room for its 1 s HTTP checks to run
	// on a loaded machine; then the gateway, which must follow it promptly.
	// Split this way, a slow agent and a gateway that missed a change fail
	// with different messages.
	testkit.WaitWithin(t, time.Minute, "Consul lists three passing users instances", func() bool {
		entries, _, err := client.Health().Service("users", "", true, nil)
		return err == nil && len(entries) == 3
	})
	testkit.WaitValue(t, "the gateway routes to the three passing instances", func() (routesBody, bool) {
		rt := getRoutes(t, a)
		if len(rt.Routes) != 1 || len(rt.Routes[0].Instances) != 3 || rt.Routes[0].Panic != "" {
			return rt, false
		}
		for _, in := range rt.Routes[0].Instances {
			if !in.Passing {
				return rt, false
			}
		}
		return rt, true
	})
	l := startLoad(t, a.url("/api/users/7"), 8)
	l.waitProgress(t, 300)

	victim := procs[1]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	killed := time.Now()
	// Usually the gateway ejects the victim long before Consul's check
	// runs; but a check may run just after the kill, and then the instance
	// leaves the table unejected. Either way no GET may fail (checked at
	// the end); ejection itself is pinned down by the outlier unit tests.
	first := testkit.WaitValue(t, "victim ejected, or Consul's check noticing first", func() (string, bool) {
		listed, passing, ejected := instanceState(t, a, victim.id)
		switch {
		case ejected:
			return "ejected", true
		case !listed || !passing:
			return "consul", true
		}
		return "", false
	})
	if first == "ejected" {
		_, stillPassing, _ := instanceState(t, a, victim.id)
		t.Logf("killed -> ejected by the gateway: %v, while Consul still listed it passing: %v", time.Since(killed).Round(time.Millisecond), stillPassing)
	} else {
		t.Logf("killed -> Consul's check noticed before the gateway ejected the victim: %v", time.Since(killed).Round(time.Millisecond))
	}
	testkit.WaitFor(t, "Consul's check noticed", func() bool { listed, passing, _ := instanceState(t, a, victim.id); return !listed || !passing })
	t.Logf("killed -> Consul's check noticed: %v", time.Since(killed).Round(time.Millisecond))
	l.waitProgress(t, 300)

	back := startDemo(t, bin, addr, victim.id, victim.listen)
	testkit.WaitFor(t, "victim back in rotation", func() bool {
		listed, passing, ejected := instanceState(t, a, back.id)
		return listed && passing && !ejected
	})
	testkit.WaitFor(t, "victim serving again", func() bool { _, inst := getInstance(t, a, "/api/users/7"); return inst == back.id })
	t.Logf("%d GETs through the kill and the restart, none failed", l.finish(t))
}
