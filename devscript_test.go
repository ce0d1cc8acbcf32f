package main

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestDemoNamesEveryTakenPortAtOnce runs scripts/dev.sh with each of its
// ports held by this test: it must exit before starting anything, name
// every taken port with the variable that moves it, and print one command
// line that moves them all, so a newcomer is not sent from one taken port
// to the next, run after run.
func TestDemoNamesEveryTakenPortAtOnce(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	vars := []string{"GATEWAY_LISTEN", "GATEWAY_ADMIN", "GATEWAY_TLS_LISTEN", "DEMO_CONSUL_PORT", "DEMO_CONSUL_SERVER_PORT", "DEMO_CONSUL_SERF_PORT"}
	env := append(os.Environ(), "DEMO_LOG_DIR="+t.TempDir(), "CONSUL_HTTP_ADDR=")
	ports := map[string]int{}
	for _, v := range vars {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		port := ln.Addr().(*net.TCPAddr).Port
		ports[v] = port
		value := strconv.Itoa(port)
		if strings.HasPrefix(v, "GATEWAY_") {
			value = "127.0.0.1:" + value
		}
		env = append(env, v+"="+value)
	}
	cmd := exec.Command("bash", "scripts/dev.sh")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("dev.sh with every port taken: exit %d (%v), want 1\n%s", code, err, out)
	}
	text := string(out)
	if strings.Contains(text, "starting") || strings.Contains(text, "building") {
		t.Errorf("dev.sh started something before checking its ports:\n%s", text)
	}
	var suggestion string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, "./scripts/dev.sh") && strings.Contains(line, "GATEWAY_LISTEN=") {
			suggestion = line
		}
	}
	for _, v := range vars {
		if !strings.Contains(text, ":"+strconv.Itoa(ports[v])+" is already in use") || !strings.Contains(text, v+" moves it") {
			t.Errorf("%s's taken port %d not named with its variable:\n%s", v, ports[v], text)
		}
		if !strings.Contains(suggestion, v+"=") {
			t.Errorf("the suggested command line %q does not move %s", suggestion, v)
		}
	}
}
