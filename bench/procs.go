package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the benchmark started; all are killed at exit.
type proc struct {
	name string
	cmd  *exec.Cmd
}

var started []*proc

// start launches a command, optionally pinned to cpu (taskset), logging to
// a file in dir so failures can be read after the run.
func start(dir, name, cpu string, env []string, args ...string) *proc {
	if cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(cmd.Start())
	p := &proc{name: name, cmd: cmd}
	started = append(started, p)
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func stopAll() {
	for i := len(started) - 1; i >= 0; i-- {
		p := started[i]
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		}
	}
	started = nil
}

// cpuTicks is the process's user+system CPU time in clock ticks, read from
// /proc/PID/stat: unlike wall-clock rates it barely moves with machine noise.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(err)
	// Fields after the command name (which may contain spaces) start after ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

// clockTick is USER_HZ; 100 on every Linux we run on.
const clockTick = 100

// rssMB is the resident set size from /proc/PID/status.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(err)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers with want, or fails after 60 s.
func waitHTTP(url string, want int) { waitHTTPWith(http.DefaultClient, url, want) }

// waitHTTPS is waitHTTP for a server with the benchmark's self-signed
// certificate.
func waitHTTPS(url string, want int) {
	waitHTTPWith(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}, url, want)
}

func waitHTTPWith(c *http.Client, url string, want int) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("timed out waiting for %s to answer %d", url, want)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	stopAll()
	os.Exit(1)
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute figures, "unknown" when
// unreadable: the machine is shared, so every report says how busy it was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
