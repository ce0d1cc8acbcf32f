package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runBin runs the built gateway with args and extra environment, and
// returns its stdout, stderr and exit status.
func runBin(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gatewayBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("gateway %q: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestBinaryVersionAndHelp runs the built binary as a new user would:
// version and help print to stdout and exit 0, a subcommand's -h is help
// rather than a file name, and a bad GATEWAY_* value exits 2 naming the
// variable.
func TestBinaryVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errOut, code := runBin(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "gateway ") || !strings.Contains(out, "\ngo1.") || errOut != "" {
			t.Errorf("gateway %q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, errOut, code := runBin(t, nil, "-h")
	if code != 0 || !strings.Contains(out, "\nListeners and limits:\n") || !strings.Contains(out, "[env GATEWAY_LISTEN]") || errOut != "" {
		t.Errorf("gateway -h: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	out, errOut, code = runBin(t, nil, "routes", "validate", "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: gateway routes validate") || errOut != "" {
		t.Errorf("gateway routes validate -h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = runBin(t, []string{"GATEWAY_LOG_LEVEL=loud"})
	if code != 2 || !strings.Contains(errOut, "loud") {
		t.Errorf("GATEWAY_LOG_LEVEL=loud: exit %d, stderr %q; want 2 and the bad value named", code, errOut)
	}
}

// TestBuildInfoAndProcessMetrics: /metrics tells which build runs and
// carries the Go runtime's and the process's series.
func TestBuildInfoAndProcessMetrics(t *testing.T) {
	_, addr := startConsul(t)
	gw := startGateway(t, addr)
	fams := scrape(t, gw)
	bi := fams["gateway_build_info"]
	if bi == nil || len(bi.GetMetric()) != 1 || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("gateway_build_info: %v", bi)
	}
	labels := map[string]string{}
	for _, l := range bi.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if !strings.HasPrefix(labels["goversion"], "go1.") || labels["version"] == "" {
		t.Errorf("gateway_build_info labels %v", labels)
	}
	if _, ok := labels["revision"]; !ok {
		t.Errorf("gateway_build_info has no revision label: %v", labels)
	}
	for _, name := range []string{"process_resident_memory_bytes", "process_open_fds", "go_goroutines", "go_memstats_heap_alloc_bytes"} {
		if v := sample(fams, name); v <= 0 {
			t.Errorf("%s = %v, want a positive value", name, v)
		}
	}
}
