package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// buildGateway compiles the real binary, as operators run it.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// gatewayProcess is the binary running with JSON logs; the addresses come
// from its "serving" line, since it binds port 0.
type gatewayProcess struct {
	cmd               *exec.Cmd
	publicAddr, admin string
	exited            chan struct{}
	exitErr           error
	logMu             sync.Mutex
	log               []string
}

func startGatewayProcess(t *testing.T, bin string, args ...string) *gatewayProcess {
	t.Helper()
	p := &gatewayProcess{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.log = append(p.log, line)
			p.logMu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["@message"] == "serving" {
				l, _ := m["listen"].(string)
				a, _ := m["admin"].(string)
				addrs <- [2]string{l, a}
			}
		}
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			p.logMu.Lock()
			for _, l := range p.log {
				t.Log("gateway: " + l)
			}
			p.logMu.Unlock()
		}
	})
	select {
	case a := <-addrs:
		p.publicAddr, p.admin = a[0], a[1]
	case <-p.exited:
		t.Fatalf("gateway exited at start: %v", p.exitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not log its addresses")
	}
	return p
}

func TestSIGTERMDrainsInFlightRequestDeregistersAndExitsZero(t *testing.T) {
	bin := buildGateway(t)
	client, consulAddr := startConsul(t)

	// The upstream holds every request until the test releases it, so the
	// request is provably in flight when SIGTERM arrives.
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		_, _ = io.WriteString(w, "slow answer")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	host, port, _ := net.SplitHostPort(slow.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "slow-1", Name: "slow", Address: host, Port: p}); err != nil {
		t.Fatal(err)
	}
	putRoute(t, client, "slow.hcl", routeDoc("slow", "/api/slow", "slow"))

	gw := startGatewayProcess(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-consul", consulAddr,
		"-log-json", "-register", "-drain-timeout", "20s")
	testkit.WaitFor(t, "route with its instance", func() bool {
		resp, err := http.Get("http://" + gw.admin + "/routes")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Routes []struct{ Instances []any } }
		return json.NewDecoder(resp.Body).Decode(&body) == nil && len(body.Routes) == 1 && len(body.Routes[0].Instances) == 1
	})
	registered := func() bool {
		s, _, err := client.Catalog().Service("gateway", "", nil)
		return err == nil && len(s) == 1
	}
	testkit.WaitFor(t, "gateway registered", registered)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + gw.publicAddr + "/api/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	<-arrived

	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", gw.publicAddr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	testkit.WaitFor(t, "gateway deregistered while the request drains", func() bool { return !registered() })
	select {
	case r := <-done:
		t.Fatalf("request finished before the upstream answered: %+v", r)
	case <-gw.exited:
		t.Fatalf("gateway exited with a request in flight: %v", gw.exitErr)
	default:
	}

	start := time.Now()
	close(release)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow answer" {
		t.Fatalf("in-flight request: code %d body %q err %v; want 200 \"slow answer\"", r.code, r.body, r.err)
	}
	select {
	case <-gw.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit after draining")
	}
	t.Logf("release -> exit: %v", time.Since(start))
	if gw.exitErr != nil {
		t.Fatalf("exit: %v, want status 0", gw.exitErr)
	}
}
