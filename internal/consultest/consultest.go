// Package consultest runs real Consul agents for integration tests. It
// launches the consul binary itself rather than through sdk/testutil for two
// reasons: an agent can be stopped and brought back on the same ports and
// data dir (to test behaviour across an outage), and readiness is waited for
// up to StartTimeout on the one agent started. testutil gives an agent two
// seconds and then starts another, which on a loaded CI machine (many
// parallel tests, -race) fails every attempt the same way.
package consultest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"
)

// ErrNotReady is wrapped by the failure reported when an agent does not elect
// itself leader and register its node within StartTimeout.
var ErrNotReady = errors.New("consul agent not ready")

// StartTimeout bounds how long Start and Restart wait for the agent to be
// usable (leader elected, own node healthy in the catalog).
const StartTimeout = 30 * time.Second

const stopTimeout = 10 * time.Second

// RequireBinary returns the path of the consul binary on PATH. When there is
// none it skips the test if the CI environment variable is unset, and fails
// it otherwise, so that CI can never silently skip integration tests.
func RequireBinary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("consul")
	if err == nil {
		return path
	}
	const hint = `consul not on PATH; run: PATH="$(scripts/install-consul.sh | tail -n1):$PATH" go test ...`
	if _, ci := os.LookupEnv("CI"); ci {
		tb.Fatalf("%s (CI is set, so this is a failure, not a skip)", hint)
	}
	tb.Skipf("%s (set CI to turn this skip into a failure)", hint)
	return ""
}

// Agent is a single-node Consul server started from the consul binary on
// fixed, reserved ports with a persistent data dir, so it can be stopped and
// restarted while clients keep the same address. Methods are safe for
// concurrent use.
type Agent struct {
	// HTTPAddr is the agent's HTTP API as "127.0.0.1:port"; it does not change
	// across restarts.
	HTTPAddr string
	// NodeName is the agent's node name in the catalog.
	NodeName string
	// DataDir holds the agent's state; it survives Stop and Restart.
	DataDir string
	// SerfWANAddr is the agent's WAN gossip address, what servers of other
	// datacenters join (see StartDatacenters).
	SerfWANAddr string
	// Datacenter is the agent's datacenter, "dc1" unless the config said
	// otherwise.
	Datacenter string

	bin     string
	config  string // path of the JSON config file
	logPath string

	mu  sync.Mutex
	cmd *exec.Cmd // nil while stopped
}

// Start launches an agent on freshly reserved ports with a data dir under
// tb.TempDir(), waits until it is usable, and stops it when the test ends. It
// skips or fails the test as RequireBinary does when consul is missing. The
// agent's log is printed if the test fails.
func Start(tb testing.TB) *Agent {
	tb.Helper()
	return StartWithConfig(tb, nil)
}

// StartWithConfig is Start with extra agent configuration merged over the
// defaults, e.g. {"session_ttl_min": "1s"} so a test can watch a session
// expire within seconds instead of Consul's 10s minimum.
func StartWithConfig(tb testing.TB, extra map[string]any) *Agent {
	tb.Helper()
	bin := RequireBinary(tb)
	dir := tb.TempDir()
	ports := freeport.GetN(tb, 4)
	a := &Agent{
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		NodeName: "consultest-" + filepath.Base(dir),
		DataDir:  filepath.Join(dir, "data"),
		// The WAN port is the third reserved; see ports below.
		SerfWANAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]),
		Datacenter:  "dc1",
		bin:         bin,
		config:      filepath.Join(dir, "config.json"),
		logPath:     filepath.Join(dir, "consul.log"),
	}
	cfg := map[string]any{
		"node_name":               a.NodeName,
		"data_dir":                a.DataDir,
		"server":                  true,
		"bootstrap_expect":        1,
		"bind_addr":               "127.0.0.1",
		"client_addr":             "127.0.0.1",
		"log_level":               "warn",
		"disable_update_check":    true,
		"skip_leave_on_interrupt": true, // a restart must find the same raft peer set
		"performance":             map[string]any{"raft_multiplier": 1},
		"ports": map[string]any{
			"http": ports[0], "serf_lan": ports[1], "serf_wan": ports[2], "server": ports[3],
			"dns": -1, "https": -1, "grpc": -1, "grpc_tls": -1,
		},
	}
	maps.Copy(cfg, extra)
	if dc, ok := cfg["datacenter"].(string); ok {
		a.Datacenter = dc
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatalf("consultest: config: %v", err)
	}
	if err := os.WriteFile(a.config, b, 0o600); err != nil {
		tb.Fatalf("consultest: %v", err)
	}
	tb.Cleanup(func() {
		a.Stop(tb)
		if tb.Failed() {
			if logs, err := os.ReadFile(a.logPath); err == nil {
				tb.Logf("consul agent log:\n%s", logs)
			}
		}
	})
	a.launch(tb)
	return a
}

// Stop interrupts the agent (without leaving the cluster) and waits for the
// process to exit, killing it after 10 s. Stopping a stopped agent is a no-op.
func (a *Agent) Stop(tb testing.TB) {
	tb.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	cmd := a.cmd
	a.cmd = nil
	_ = cmd.Process.Signal(os.Interrupt)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		tb.Errorf("consultest: agent did not stop within %s; killed it", stopTimeout)
	}
}

// Restart stops the agent if it runs, starts it again on the same ports and
// data dir, and waits until it is usable; data written before survives.
func (a *Agent) Restart(tb testing.TB) {
	tb.Helper()
	a.Stop(tb)
	a.launch(tb)
}

func (a *Agent) launch(tb testing.TB) {
	tb.Helper()
	logFile, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatalf("consultest: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	// An *os.File (not an io.Writer) so exec starts no copying goroutines
	// that leak checks would have to ignore.
	cmd := exec.Command(a.bin, "agent", "-config-file", a.config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		tb.Fatalf("consultest: start consul: %v", err)
	}
	a.mu.Lock()
	a.cmd = cmd
	a.mu.Unlock()
	if err := a.waitReady(); err != nil {
		a.Stop(tb)
		tb.Fatalf("consultest: %v", err)
	}
}

// waitReady polls until the agent has a leader and its own node is healthy in
// the catalog, which is what services registered through it need.
func (a *Agent) waitReady() error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		if last = a.ready(client); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w at %s after %s: %w", ErrNotReady, a.HTTPAddr, StartTimeout, last)
}

func (a *Agent) ready(client *http.Client) error {
	var leader string
	if err := getJSON(client, "http://"+a.HTTPAddr+"/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	var checks []struct{ CheckID, Status string }
	if err := getJSON(client, "http://"+a.HTTPAddr+"/v1/health/node/"+a.NodeName, &checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" && c.Status == "passing" {
			return nil
		}
	}
	return errors.New("node not yet healthy in catalog")
}

func getJSON(client *http.Client, url string, out any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}

// StartDatacenters starts one server per name, each the only server of
// the datacenter of that name, joined over the WAN on loopback, and
// returns once every server lists every datacenter, so a query with
// ?dc= reaches any of them. The agents stop when the test ends.
func StartDatacenters(tb testing.TB, names ...string) []*Agent {
	tb.Helper()
	agents := make([]*Agent, 0, len(names))
	for i, name := range names {
		cfg := map[string]any{
			"datacenter": name,
			// Loopback answers in microseconds: short WAN timings keep the
			// join and failure detection within the test's seconds.
			"retry_interval_wan": "200ms",
		}
		if i > 0 {
			cfg["retry_join_wan"] = []string{agents[0].SerfWANAddr}
		}
		agents = append(agents, StartWithConfig(tb, cfg))
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(StartTimeout)
	for _, a := range agents {
		for {
			var dcs []string
			err := getJSON(client, "http://"+a.HTTPAddr+"/v1/catalog/datacenters", &dcs)
			if err == nil && len(dcs) == len(names) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("consultest: %s sees datacenters %v (error %v), want %v after %s: %v", a.Datacenter, dcs, err, names, StartTimeout, ErrNotReady)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return agents
}
