package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatewayco/gateway/internal/testkit"
)

// Built once per test run by TestMain, so no test pays for a build.
var (
	moduleRoot string // the repository, where go.mod is
	binDir     string // temporary directory holding the binaries
	gatewayBin string // the gateway, built with -race when the tests are
)

// lazyBuild is a binary built on first use, for what only some tests run.
type lazyBuild struct {
	once sync.Once
	path string
	err  error
}

var (
	demo  lazyBuild // the demo service
	plain lazyBuild // the gateway without -race, when gatewayBin has it
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD: %q, %v)\n", out, err)
		return 1
	}
	moduleRoot = filepath.Dir(strings.TrimSpace(string(out)))
	if binDir, err = os.MkdirTemp("", "gateway-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// With -race the gateway's code keeps running under the race detector,
	// as it did when these tests ran it in-process; a race makes the
	// binary exit 66, which every stop checks.
	if gatewayBin, err = build("gateway", ".", raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if code := m.Run(); code != 0 {
		return code
	}
	// The gateways are other processes, each checked for its exit; this
	// checks the tests themselves: every load client, log reader and
	// proxy is gone once its test ended.
	if err := goleak.Find(goleak.IgnoreTopFunction("github.com/hashicorp/consul/sdk/freeport.checkFreedPorts")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: goroutines left behind:", err)
		return 1
	}
	return 0
}

// build compiles the package pkg of the module into binDir/name.
func build(name, pkg string, race bool) (string, error) {
	bin := filepath.Join(binDir, name)
	args := []string{"build"}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "-o", bin, pkg)...)
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

func (b *lazyBuild) get(t *testing.T, name, pkg string) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = build(name, pkg, false) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// demoBin returns the demo-service binary.
func demoBin(t *testing.T) string { return demo.get(t, "demo-service", "./examples/demo-service") }

// plainGatewayBin returns the gateway built as operators run it, without
// the race detector, for tests that measure the process's memory.
func plainGatewayBin(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return gatewayBin
	}
	return plain.get(t, "gateway-norace", ".")
}

// repoFile is the path of a file of the repository (tests run in e2e/).
func repoFile(name string) string { return filepath.Join(moduleRoot, name) }

// gatewayEnv is added to every gateway's environment: the secrets the
// tests' route documents name in secret_env. Passed to the process rather
// than set with t.Setenv, which parallel tests cannot use.
var gatewayEnv = []string{
	authEnvSecret + "=" + authSecret,
	routerSecretEnv + "=s3cret",
}

// stopTimeout bounds how long a stopped gateway may take to exit: more
// than the 5 s drain startGateway gives it, so a slow drain is reported as
// what it is rather than as a kill.
const stopTimeout = 30 * time.Second

// gatewayProc is one running gateway binary. Its addresses come from its
// "serving" log line, since it binds port 0; every line it logs is kept,
// for tests that read the log and for the failure output.
type gatewayProc struct {
	public, admin string // host:port of the public and admin listeners
	tlsAddr       string // host:port of the TLS listener; "" without -tls-listen

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
	err    error         // its exit error, once exited is closed
	// claimed is set once a test waited for the exit itself (wait), so
	// the cleanup leaves judging the exit status to that test.
	claimed bool
	// dumpOnFailure makes the cleanup of a failed test send SIGQUIT, so
	// the log ends with every goroutine's stack (leak checks set it).
	dumpOnFailure bool

	// adminClient keeps one connection to the admin listener, so reading
	// /metrics adds the same, single connection to every goroutine count.
	adminClient *http.Client

	mu    sync.Mutex
	lines []string
}

// textServing finds the addresses in a text-format "serving" line.
var textServing = regexp.MustCompile(`gateway: serving: listen=(\S+) admin=(\S+)(?:.* tls_listen=(\S+))?`)

// startGateway runs the binary against the Consul agent at consulAddr on
// loopback ports, with the defaults the tests share (JSON log, no access
// log, a 5 s drain) and then extra, whose flags win over the defaults. It
// returns once /health answers 200, and at cleanup stops the process with
// SIGTERM (SIGKILL if it does not exit), failing the test unless it exits 0
// without a data race. The log is printed when the test fails.
func startGateway(t *testing.T, consulAddr string, extra ...string) *gatewayProc {
	t.Helper()
	return startGatewayBin(t, gatewayBin, consulAddr, extra...)
}

// startGatewayBin is startGateway running the binary bin.
func startGatewayBin(t *testing.T, bin, consulAddr string, extra ...string) *gatewayProc {
	t.Helper()
	return startGatewayWith(t, gatewayStart{bin: bin}, consulAddr, extra...)
}

// startGatewayEnv is startGatewayBin with env ("NAME=value") added to the
// process's environment.
func startGatewayEnv(t *testing.T, bin, consulAddr string, env []string, extra ...string) *gatewayProc {
	t.Helper()
	return startGatewayWith(t, gatewayStart{bin: bin, env: env}, consulAddr, extra...)
}

// gatewayStart is how startGatewayWith runs the binary, beyond its flags.
type gatewayStart struct {
	bin string // "" means gatewayBin
	// env is added to the process's environment (CONSUL_HTTP_TOKEN, ...),
	// after the tests' own, so it wins.
	env []string
	// unhealthy returns as soon as the addresses are logged, without
	// waiting for /health to answer 200: for a gateway that must not.
	unhealthy bool
}

// startGatewayWith is startGateway run as s says.
func startGatewayWith(t *testing.T, s gatewayStart, consulAddr string, extra ...string) *gatewayProc {
	t.Helper()
	bin := s.bin
	if bin == "" {
		bin = gatewayBin
	}
	args := append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-consul", consulAddr,
		"-log-json", "-access-log=false", "-drain-timeout", "5s"}, extra...)
	p := &gatewayProc{
		cmd:         exec.Command(bin, args...),
		exited:      make(chan struct{}),
		adminClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
	}
	// A race-enabled binary otherwise sleeps a second at exit for late
	// reports. Races are reported as they happen; the sleep only covers
	// goroutines still running at exit, and a drained gateway has stopped
	// its own. A second per gateway adds up over the package.
	p.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	p.cmd.Env = append(p.cmd.Env, gatewayEnv...)
	p.cmd.Env = append(p.cmd.Env, s.env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [3]string, 1)
	go p.readLog(stderr, addrs)
	t.Cleanup(func() { p.cleanup(t) })
	select {
	case a := <-addrs:
		p.public, p.admin, p.tlsAddr = a[0], a[1], a[2]
	case <-p.exited:
		t.Fatalf("gateway exited at start: %v", p.err)
	case <-time.After(testkit.Timeout):
		t.Fatal("gateway did not log its addresses")
	}
	if s.unhealthy {
		return p
	}
	testkit.WaitFor(t, "gateway /health answers 200", func() bool {
		resp, err := p.adminClient.Get("http://" + p.admin + "/health")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// readLog keeps every line of the process's stderr until it exits, sends
// the addresses of its "serving" line on addrs, then reaps the process.
func (p *gatewayProc) readLog(stderr io.Reader, addrs chan<- [3]string) {
	br := bufio.NewReader(stderr) // no line length limit, unlike a Scanner
	sent := false
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimSuffix(line, "\n"); line != "" || err == nil {
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if !sent {
				if a, ok := servingAddrs(line); ok {
					addrs <- a
					sent = true
				}
			}
		}
		if err != nil {
			break
		}
	}
	p.err = p.cmd.Wait()
	close(p.exited)
}

// servingAddrs reads the listen, admin and TLS addresses from the
// "serving" line, in either log format.
func servingAddrs(line string) ([3]string, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) == nil {
		if m["@message"] != "serving" {
			return [3]string{}, false
		}
		l, _ := m["listen"].(string)
		a, _ := m["admin"].(string)
		t, _ := m["tls_listen"].(string)
		return [3]string{l, a, t}, true
	}
	if s := textServing.FindStringSubmatch(line); s != nil {
		return [3]string{s[1], s[2], s[3]}, true
	}
	return [3]string{}, false
}

// tlsURL is the https URL of path on the TLS listener.
func (p *gatewayProc) tlsURL(path string) string { return "https://" + p.tlsAddr + path }

func (p *gatewayProc) cleanup(t *testing.T) {
	p.adminClient.CloseIdleConnections()
	select {
	case <-p.exited:
		if !p.claimed && !t.Failed() {
			t.Errorf("gateway exited before the test ended: %v", p.err)
		}
	default:
		sig := syscall.SIGTERM
		if t.Failed() && p.dumpOnFailure {
			sig = syscall.SIGQUIT
		}
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.exited:
			if sig == syscall.SIGTERM && p.err != nil {
				t.Errorf("gateway exit after SIGTERM: %v, want status 0", p.err)
			}
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("gateway did not exit within %s of SIGTERM; killed it", stopTimeout)
		}
	}
	log := p.logText()
	if strings.Contains(log, "WARNING: DATA RACE") {
		t.Error("the gateway reported a data race (its log follows)")
	}
	if t.Failed() {
		for _, l := range p.logLines() {
			t.Logf("gateway pid %d: %s", p.cmd.Process.Pid, l)
		}
	}
}

// signal sends sig to the process.
func (p *gatewayProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit error
// (nil for status 0); the test then owns the verdict on it.
func (p *gatewayProc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		p.claimed = true
		return p.err
	case <-time.After(d):
		t.Fatalf("gateway did not exit within %s", d)
		return nil
	}
}

// running reports whether the process has not exited yet.
func (p *gatewayProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *gatewayProc) pid() int { return p.cmd.Process.Pid }

// url is the public URL of path.
func (p *gatewayProc) url(path string) string { return "http://" + p.public + path }

// logLines returns a copy of the lines logged so far.
func (p *gatewayProc) logLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// logText is the log so far, one line per log line.
func (p *gatewayProc) logText() string {
	lines := p.logLines()
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
