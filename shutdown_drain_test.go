package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// TestHungConsulDoesNotEatTheDrain: deregistration at shutdown talks to
// an agent that never answers. It must give up on its own short bound, so
// a request in flight still gets the whole drain to finish.
func TestHungConsulDoesNotEatTheDrain(t *testing.T) {
	gaveUp := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the deregistration gave up
		close(gaveUp)
	}))
	defer hung.Close()
	client, err := registry.NewClient(hung.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	pubLn, _ := net.Listen("tcp", "127.0.0.1:0")
	admLn, _ := net.Listen("tcp", "127.0.0.1:0")
	pub := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-gaveUp // finish only after deregistration was abandoned
		_, _ = io.WriteString(w, "ok")
	})}
	adm := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = pub.Serve(pubLn) }()
	go func() { _ = adm.Serve(admLn) }()
	a := &app{public: pub, admin: adm, stopWatches: func() {}, health: registry.NewHealth(client, registry.Options{}, nil),
		self: &selfRegistration{client: client, id: "gw", logger: hclog.NewNullLogger()}}

	result := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + pubLn.Addr().String())
		if err != nil {
			result <- 0
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-started
	if err := a.shutdown(8 * time.Second); err != nil {
		t.Fatalf("shutdown: %v; the hung deregistration used up the drain", err)
	}
	if code := <-result; code != 200 {
		t.Fatalf("in-flight request got %d, want 200", code)
	}
}
