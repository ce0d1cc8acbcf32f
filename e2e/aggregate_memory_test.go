package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// bigAggregateDoc fans out to three services, each answering 4 MiB.
const bigAggregateDoc = `
aggregate "big" {
  path = "/api/big/{id}"
  call "a" {
    service = "big-a"
    path    = "/a/{id}"
  }
  call "b" {
    service = "big-b"
    path    = "/b/{id}"
  }
  call "c" {
    service = "big-c"
    path    = "/c/{id}"
  }
}
`

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// bigAggregateRun starts the binary bin with flags against three 4 MiB
// upstreams, sends rounds × clients concurrent aggregates and returns how
// many were answered and refused, and the process's VmHWM.
func bigAggregateRun(t *testing.T, bin string, rounds, clients int, flags ...string) (ok, refused int, hwm int64) {
	client, consulAddr := startConsul(t)
	answer := `"` + strings.Repeat("x", 4<<20-2) + `"`
	for _, svc := range []string{"big-a", "big-b", "big-c"} {
		startBackendWith(t, client, svc, svc+"-1", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
			_, _ = io.WriteString(w, answer)
		})
	}
	putRoute(t, client, "big.hcl", bigAggregateDoc)
	gw := startGatewayBin(t, bin, consulAddr, flags...)
	waitAggregates(t, gw, 1)

	// One client per goroutine, so every request has its own connection
	// and the aggregates really run at once.
	var mu sync.Mutex
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				hc := &http.Client{Transport: &http.Transport{}}
				defer hc.CloseIdleConnections()
				resp, err := hc.Get(gw.url(fmt.Sprintf("/api/big/%d-%d", round, i)))
				if err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && resp.StatusCode == http.StatusOK && len(body) > 12<<20:
					ok++
				case err == nil && resp.StatusCode == http.StatusServiceUnavailable &&
					strings.Contains(string(body), `"error":"aggregate memory limit reached"`) && resp.Header.Get("Retry-After") != "":
					refused++
				default:
					t.Errorf("answer %d (%d bytes, err %v): %.200s", resp.StatusCode, len(body), err, body)
				}
			})
		}
		wg.Wait()
	}
	hwm = vmHWM(t, gw.pid())
	if v := sample(scrape(t, gw), "gateway_aggregate_buffered_bytes"); v != 0 {
		t.Errorf("gateway_aggregate_buffered_bytes = %v after every answer, want 0", v)
	}
	return ok, refused, hwm
}

// TestAggregateMemoryBoundHoldsInTheBinary: 64 concurrent aggregates of
// three 4 MiB answers each (768 MiB wanted at once) against a 64 MiB
// budget: some are answered, the rest get 503 "aggregate memory limit
// reached" with Retry-After, and the budget is back to zero afterwards.
// GATEWAY_MEASURE_RSS=1 also runs the same load without a bound and with
// the default one, and logs each run's VmHWM (about 1.5 GiB unbounded).
//
// It runs alone, not in parallel: gigabytes through loopback would starve the
// other tests, and other tests would blur its VmHWM.
func TestAggregateMemoryBoundHoldsInTheBinary(t *testing.T) {
	// Built without the race detector, whose shadow memory would make the
	// VmHWM figures meaningless.
	bin := plainGatewayBin(t)
	const rounds, clients = 3, 64
	ok, refused, hwm := bigAggregateRun(t, bin, rounds, clients, "-aggregate-max-bytes", strconv.Itoa(64<<20))
	t.Logf("bound 64 MiB: %d answered, %d refused, VmHWM %d MiB", ok, refused, hwm>>20)
	if ok == 0 || refused == 0 || ok+refused != rounds*clients {
		t.Fatalf("%d answered, %d refused of %d; want some of each and nothing else", ok, refused, rounds*clients)
	}
	if os.Getenv("GATEWAY_MEASURE_RSS") == "" {
		return
	}
	for _, bound := range []string{strconv.Itoa(256 << 20), "-1"} {
		t.Run("bound "+bound, func(t *testing.T) {
			ok, refused, hwm := bigAggregateRun(t, bin, rounds, clients, "-aggregate-max-bytes", bound)
			t.Logf("bound %s: %d answered, %d refused, VmHWM %d MiB", bound, ok, refused, hwm>>20)
		})
	}
}
