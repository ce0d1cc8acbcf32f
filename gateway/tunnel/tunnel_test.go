package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
)

// closedCount is gateway_tunnels_closed_total for route and reason.
func closedCount(t *testing.T, m *metrics.Metrics, route, reason string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "gateway_tunnels_closed_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["route"] == route && l["reason"] == reason {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestReserveBoundsTotalAndPerClient(t *testing.T) {
	tr := New(Options{Max: 3, MaxPerClient: 2})
	a1, err1 := tr.Reserve("r", "a")
	_, err2 := tr.Reserve("r", "a")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := tr.Reserve("r", "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("third of client a: %v, want ErrFull", err)
	}
	if _, err := tr.Reserve("r", "b"); err != nil {
		t.Fatalf("first of client b: %v", err)
	}
	if _, err := tr.Reserve("r", "c"); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth in all past Max 3: %v, want ErrFull", err)
	}
	a1.Done() // a handshake that failed gives its slot back
	if _, err := tr.Reserve("r", "a"); err != nil {
		t.Fatalf("after a slot came back: %v", err)
	}
	if n := len(tr.clients); n != 2 {
		t.Errorf("%d client entries, want 2 (only clients holding slots)", n)
	}
}

// TestCloseReasons checks which side a closing is blamed on: the client's
// EOF, the upstream's end (CloseWrite, or the proxy closing after an
// upstream failure), and an idle cut.
func TestCloseReasons(t *testing.T) {
	m := metrics.New(metrics.Options{})
	clock := testkit.NewClock()
	tr := New(Options{Now: clock.Now, AfterFunc: clock.AfterFunc, Metrics: m})
	open := func() (client net.Conn, tc net.Conn, tn *Tunnel) {
		tn, err := tr.Reserve("r", "x")
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		t.Cleanup(func() { client.Close() })
		return client, tn.Attach(server, time.Minute), tn
	}

	client, tc, tn := open()
	client.Close()
	if _, err := tc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the client closed: %v", err)
	}
	tc.Close()
	tn.Done()

	_, tc, tn = open()
	_ = tc.(interface{ CloseWrite() error }).CloseWrite()
	tn.Done()

	_, tc, tn = open()
	done := make(chan error, 1)
	go func() { _, err := tc.Read(make([]byte, 1)); done <- err }()
	testkit.WaitFor(t, "idle timer", func() bool { return clock.Timers() == 1 })
	clock.Advance(time.Minute)
	if err := <-done; err == nil {
		t.Fatal("read on an idle tunnel returned no error")
	}
	tn.Done()

	for reason, want := range map[string]float64{ReasonClient: 1, ReasonUpstream: 1, ReasonIdle: 1, ReasonShutdown: 0} {
		if got := closedCount(t, m, "r", reason); got != want {
			t.Errorf("closed{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if n := tr.Open(""); n != 0 {
		t.Errorf("%d open after every Done", n)
	}
	if n := tr.Shutdown(context.Background()); n != 0 {
		t.Errorf("Shutdown with nothing open closed %d", n)
	}
	if _, err := tr.Reserve("r", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Reserve after Shutdown: %v, want ErrClosed", err)
	}
}

// TestPerClientBoundCountsIPv6ByItsBlock: an IPv6 client has a /64 of
// addresses to itself; counted per address, the per-client bound would
// not stop it taking every slot.
func TestPerClientBoundCountsIPv6ByItsBlock(t *testing.T) {
	tr := New(Options{MaxPerClient: 1})
	for _, tc := range []struct {
		client string
		full   bool
	}{
		{"2001:db8::1", false},
		{"2001:db8::2", true},      // the same /64
		{"2001:db8:0:1::1", false}, // the next /64
		{"192.0.2.1", false},
		{"192.0.2.2", false},
		{"::ffff:192.0.2.3", false}, // IPv4 in IPv6: an address of its own, not a /64
	} {
		_, err := tr.Reserve("r", tc.client)
		if full := errors.Is(err, ErrFull); full != tc.full || (err != nil && !full) {
			t.Errorf("Reserve from %s: %v, want full %v", tc.client, err, tc.full)
		}
	}
}
