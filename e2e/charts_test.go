package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// TestDashboardChartsMoveWithTrafficInChromium: the dashboard draws each
// route's last 15 minutes as inline SVG, and a second look after more
// traffic shows more requests and a different line. Unmatched requests get
// their own chart and their 404/405 counts.
func TestDashboardChartsMoveWithTrafficInChromium(t *testing.T) {
	t.Parallel()
	chromium := requireChromium(t)
	client, addr := startConsul(t)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", "route \"users\" {\n  path_prefix = \"/api/users\"\n  methods     = [\"GET\"]\n  service     = \"users\"\n}\n")
	a := startGateway(t, addr)
	testkit.WaitFor(t, "the users route", func() bool { return len(getRoutes(t, a).Routes) == 1 })
	send := func(method, path string, n int) {
		t.Helper()
		for range n {
			req, _ := http.NewRequest(method, a.url(path), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	row := regexp.MustCompile(`<tr data-name="users" data-total="(\d+)">`)
	rpsLine := regexp.MustCompile(`<svg class="chart"[^>]*data-name="users" data-metric="rps"[^>]*><polyline class="rps" points="([^"]+)">`)
	latency := regexp.MustCompile(`<svg class="chart"[^>]*data-name="users" data-metric="latency"[^>]*><polyline class="p50" points="[^"]+"></polyline><polyline class="p99" points="[^"]+">`)
	look := func() (total int, points, dom string) {
		t.Helper()
		dom = runChromium(t, chromium, "http://"+a.admin+"/", "--dump-dom")
		m, l := row.FindStringSubmatch(dom), rpsLine.FindStringSubmatch(dom)
		if m == nil || l == nil || !latency.MatchString(dom) {
			t.Fatalf("no users row with request and latency charts in the DOM:\n%s", dom)
		}
		total, _ = strconv.Atoi(m[1])
		if n := len(strings.Fields(l[1])); n != 90 {
			t.Errorf("request chart has %d points, want 90 (15 minutes of 10 s)", n)
		}
		return total, l[1], dom
	}

	send("GET", "/api/users/1", 20)
	total1, line1, _ := look()
	if total1 != 20 {
		t.Errorf("first look: chart counts %d requests, want 20", total1)
	}
	send("GET", "/api/users/2", 30)
	send("GET", "/nowhere", 3)
	send("DELETE", "/api/users/2", 2)
	// The line is drawn to the window's peak: while both looks fall in
	// the same 10 s bucket it has the same shape, so look again until the
	// bucket turns (at most one bucket later) and the peak moves.
	var total2 int
	var line2, dom string
	deadline := time.Now().Add(30 * time.Second)
	for {
		total2, line2, dom = look()
		if line2 != line1 || time.Now().After(deadline) {
			break
		}
	}
	if total2 != 50 {
		t.Errorf("second look: chart counts %d requests, want 50", total2)
	}
	if line2 == line1 {
		t.Errorf("the request chart did not move with traffic: %s", line2)
	}
	if !regexp.MustCompile(`<tr data-name="unmatched" data-total="5">`).MatchString(dom) {
		t.Error("no unmatched chart with the 5 unmatched requests")
	}
	if !strings.Contains(dom, `<div class="value" id="s-unmatched">3<small> / </small>2</div>`) {
		t.Errorf("unmatched 404 / 405 counts not shown as 3 / 2")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	// For people: CI keeps artifacts/.
	shot := repoFile(filepath.Join("artifacts", "dashboard-charts.png"))
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	runChromium(t, chromium, "http://"+a.admin+"/", "--screenshot="+shot, "--window-size=1280,1000", "--hide-scrollbars")
	t.Logf("screenshot: %s", shot)
}
