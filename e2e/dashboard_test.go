package e2e

import (
	"context"
	"encoding/json"
	"fmt"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// requireChromium returns the headless browser, skipping the test when it
// is missing unless CI is set (scripts/test.sh installs it there).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const hint = "chromium not on PATH; install it (apt-get install -y chromium) or run ./scripts/test.sh"
	if _, ci := os.LookupEnv("CI"); ci {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", hint)
	}
	t.Skipf("%s (set CI to turn this skip into a failure)", hint)
	return ""
}

// runChromium runs one headless chromium command against url with a fresh
// profile and returns its stdout.
func runChromium(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(),
		// Virtual time lets the page's 1.5 s polls run several times
		// without the test sleeping.
		"--virtual-time-budget=5000",
	}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	t.Logf("chromium %v took %v", extra, time.Since(start))
	return stdout.String()
}

func TestDashboardShowsRoutesInstancesAndConfigErrorsInChromium(t *testing.T) {
	t.Parallel()
	chromium := requireChromium(t)
	client, addr := startConsul(t)
	var instances []string
	for _, id := range []string{"users-1", "users-2"} {
		instances = append(instances, startBackend(t, client, "users", id).addr())
	}
	instances = append(instances, startBackend(t, client, "orders", "orders-1").addr())
	// The demo's own route document, so the screenshot shows what a
	// newcomer sees after ./scripts/dev.sh.
	demo, err := os.ReadFile(repoFile("routes.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	putRoute(t, client, "routes.hcl", string(demo))
	putRoute(t, client, "team-b.hcl", "route \"search\" {\n  path_prefix = \"/api/search\"\n  service     = \"search\"\n  balancer    = \"fastest\"\n}\n")
	putRoute(t, client, "legacy.hcl", routeDoc("legacy", "/api/legacy", "orders"))
	// A canary split between two tagged instances, for its weights,
	// condition and observed shares.
	for _, v := range []string{"v1", "v2"} {
		instances = append(instances, startTaggedBackend(t, client, "accounts", "accounts-"+v, v).addr())
	}
	putRoute(t, client, "accounts.hcl", strings.NewReplacer("/api/users", "/api/accounts", `"users"`, `"accounts"`).Replace(canaryDoc(95, 5)))
	// A TLS listener with one file certificate and a rejected KV bundle,
	// for the certificates section.
	pair := newCertPair(t, t.TempDir(), "dash", "dash.example.test")
	putCert(t, client, "broken", []byte("not a bundle"))
	a := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile)
	testkit.WaitFor(t, "the broken bundle listed", func() bool { return len(getCerts(t, a).Rejected) == 1 })
	certErr := getCerts(t, a).Rejected[0].Error
	testkit.WaitFor(t, "the legacy route", func() bool { return len(getRoutes(t, a).Routes) == 5 })
	// A bad write to legacy.hcl: it keeps serving its last good version.
	putRoute(t, client, "legacy.hcl", "route \"legacy\" {\n  path_prefix = \n}\n")
	var configErr string
	var lastGood configError
	testkit.WaitFor(t, "routes and the config errors loaded", func() bool {
		tbl := getRoutes(t, a)
		if len(tbl.Routes) != 5 || len(tbl.Aggregates) != 3 || len(tbl.Errors) != 2 {
			return false
		}
		// Sorted by key: legacy.hcl, then team-b.hcl.
		lastGood, configErr = tbl.Errors[0], tbl.Errors[1].Message
		return true
	})

	// Traffic while the browser samples, so the rates are real numbers.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			path := []string{"/api/users/1", "/api/orders", "/api/products", "/api/dashboard/1", "/nowhere", "/api/accounts"}[i%6]
			if resp, err := http.Get(a.url(path)); err == nil {
				resp.Body.Close()
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// Rates are taken against the oldest sample of the gateway's window;
	// take one now and let traffic flow for a while, so the browser's
	// polls (virtual time runs them milliseconds apart) get real rates.
	adminGet(t, a, "/api/state")
	testkit.WaitFor(t, "traffic on every route", func() bool {
		var state struct {
			Entries []struct {
				Name     string `json:"name"`
				Requests uint64 `json:"requests"`
			} `json:"entries"`
		}
		if err := json.Unmarshal([]byte(adminText(t, a, "/api/state")), &state); err != nil {
			t.Fatalf("/api/state: %v", err)
		}
		requests := map[string]uint64{}
		for _, e := range state.Entries {
			requests[e.Name] = e.Requests
		}
		for _, rt := range []string{"users", "orders", "products", "user-dashboard", "accounts"} {
			if requests[rt] < 10 {
				return false
			}
		}
		return true
	})

	url := "http://" + a.admin + "/"
	dom := runChromium(t, chromium, url, "--dump-dom")
	wants := []string{"users", "orders", "products", "user-dashboard", "round_robin", "gateway/routes/team-b.hcl",
		// The error text as the gateway reported it (line:col included).
		htmlText(configErr),
		// The certificates section: the file's, and the rejected bundle.
		"dash.example.test", pair.certFile, "kv gateway/certs/broken", htmlText(certErr)}
	wants = append(wants, instances...)
	for _, w := range wants {
		if !strings.Contains(dom, w) {
			t.Errorf("rendered DOM lacks %q", w)
		}
	}
	since := lastGood.LastGoodSince.UTC().Format("2006-01-02 15:04:05 UTC")
	if want := htmlText(fmt.Sprintf("Serving last good version from %s (index %d), newer version rejected:", since, lastGood.LastGoodIndex)); lastGood.Serving != "last_good" || !strings.Contains(dom, want) || !strings.Contains(dom, htmlText(lastGood.Message)) {
		t.Errorf("legacy.hcl (%+v): the DOM lacks %q and its error", lastGood, want)
	}
	// The split route: each destination with its weight, configured and
	// observed share, and the header forcing v2.
	for _, w := range []string{"accounts:v1", "accounts:v2", "weight 95 (95.0 %) · observed ", "weight 5 (5.0 %) · observed ", "header X-Canary=1"} {
		if !strings.Contains(dom, htmlText(w)) {
			t.Errorf("rendered DOM lacks the split's %q", w)
		}
	}
	if !strings.Contains(dom, "Serving nothing for this key") {
		t.Error("team-b.hcl is not shown as serving nothing")
	}
	if !strings.Contains(dom, "no healthy instance") {
		t.Error("route products (no instances) is not flagged")
	}
	if !regexp.MustCompile(`<span class="pill ok" id="consul"[^>]*>ok</span>`).MatchString(dom) {
		t.Error("Consul state is not shown as ok")
	}
	// products has no instance: every request is a 503.
	if !strings.Contains(dom, `<span class="pill bad">100%</span>`) {
		t.Error("the products route's 100% error rate is not shown")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	// At the repository root, where CI collects artifacts/.
	shot := repoFile(filepath.Join("artifacts", "dashboard.png"))
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(shot)
	runChromium(t, chromium, url, "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s missing or implausibly small: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// htmlText escapes s as --dump-dom serialises text nodes.
func htmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\u00a0", "&nbsp;").Replace(s)
}
