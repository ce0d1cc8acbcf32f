package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// deepDocument killed every gateway watching the prefix, and again at
// every start: 100,000 nested brackets, 100 KB (well within Consul's
// 512 KiB value limit), exhaust the Go stack in HCL's recursive-descent
// parser, a fatal error that no recover catches.
func deepDocument() string {
	return "route \"users\" {\n  path_prefix = \"/api/users\"\n  service     = " + strings.Repeat("[", 100_000) + "\n}\n"
}

// deepError is where the nesting bound rejects deepDocument: the route's
// brace is level 1, so level 33 is the 32nd bracket, on line 3 from
// column 17.
const deepError = ":3:48: nesting deeper than 32 levels, the limit"

// alive fails the test if the process has exited.
func alive(t *testing.T, p *gatewayProc) {
	t.Helper()
	if !p.running() {
		t.Fatalf("gateway exited: %v", p.wait(t, stopTimeout))
	}
}

// configErrors returns /routes' errors by key.
func configErrors(t *testing.T, p *gatewayProc) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range getRoutes(t, p).Errors {
		out[e.Key] = e.Message
	}
	return out
}

// writeFile writes content to a new file name in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDocumentThatCrashedTheParserIsRejected(t *testing.T) {
	t.Parallel()
	// routes validate runs without the race detector: the time and peak
	// RSS it logs are the README's figures for the binary operators run.
	bin := plainGatewayBin(t)

	t.Run("routes validate", func(t *testing.T) {
		f := writeFile(t, "deep.hcl", deepDocument())
		start := time.Now()
		out, err := exec.Command(bin, "routes", "validate", f).CombinedOutput()
		took := time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want status 1 (invalid document); output:\n%.2000s", err, out)
		}
		if want := f + deepError; !strings.HasPrefix(string(out), want) {
			t.Fatalf("output %.500q, want it to start with %q", out, want)
		}
		t.Logf("deep document (%d bytes) rejected by routes validate in %v (process, start to exit)", len(deepDocument()), took)
	})

	t.Run("gateways", func(t *testing.T) {
		client, consulAddr := startConsul(t)
		startBackend(t, client, "users", "users-1")
		startBackend(t, client, "orders", "orders-1")
		putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
		putRoute(t, client, "orders.hcl", routeDoc("orders", "/api/orders", "orders"))
		serves := func(p *gatewayProc, path string) bool {
			alive(t, p)
			code, _ := getInstance(t, p, path)
			return code == 200
		}
		first := startGateway(t, consulAddr)
		testkit.WaitFor(t, "both routes served", func() bool { return serves(first, "/api/users") && serves(first, "/api/orders") })

		putRoute(t, client, "users.hcl", deepDocument())
		const key = "gateway/routes/users.hcl"
		rejected := func(p *gatewayProc) bool {
			alive(t, p)
			return strings.HasPrefix(configErrors(t, p)[key], key+deepError)
		}
		testkit.WaitFor(t, "the deep document listed under errors", func() bool { return rejected(first) })
		if !serves(first, "/api/users") || !serves(first, "/api/orders") {
			t.Fatal("the gateway stopped serving the last good routes")
		}
		if got := sample(scrape(t, first), "gateway_config_rejected_documents"); got != 1 {
			t.Fatalf("rejected documents metric %v, want 1", got)
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", first.pid())); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmHWM:") || strings.HasPrefix(l, "VmRSS:") {
					t.Logf("gateway after rejecting the deep document: %s", strings.Join(strings.Fields(l), " "))
				}
			}
		}

		// A gateway started after the bad write starts, and serves the
		// other key.
		second := startGateway(t, consulAddr)
		testkit.WaitFor(t, "the late gateway serves the other key and lists the bad one", func() bool {
			return serves(second, "/api/orders") && rejected(second)
		})
		if got := sample(scrape(t, second), "gateway_config_rejected_documents"); got != 1 {
			t.Fatalf("late gateway: rejected documents metric %v, want 1", got)
		}
		alive(t, first)
	})
	t.Run("largest accepted document", func(t *testing.T) {
		// The worst document the bounds let through: exactly
		// MaxDocumentBytes, nearly MaxDocumentTokens of routes. The
		// figures are logged for the README, not asserted.
		var b strings.Builder
		for i := 0; b.Len() < 740_000; i++ {
			fmt.Fprintf(&b, "route \"r%d\" {\n  path_prefix  = \"/api/r%d\"\n  methods      = [\"GET\", \"POST\"]\n  service      = \"svc%d\"\n"+
				"  timeout      = \"5s\"\n  retries      = 2\n  strip_prefix = \"/api\"\n  balancer     = \"random\"\n  host         = \"r%d.example.com\"\n}\n", i, i, i, i)
		}
		routes := strings.Count(b.String(), "route \"")
		b.WriteString("# " + strings.Repeat("x", 1<<20-b.Len()-3) + "\n")
		f := writeFile(t, "largest.hcl", b.String())
		start := time.Now()
		cmd := exec.Command(bin, "routes", "validate", f)
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if want := fmt.Sprintf("ok (%d routes)", routes); err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("largest document: %v, output %.500q, want %q", err, out, want)
		}
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		t.Logf("largest accepted document: %d bytes, %d routes: routes validate took %v, peak RSS %d MiB", b.Len(), routes, took, rss/1024)
	})
}
