// Command demo-service is a tiny upstream for trying the gateway locally.
//
// One binary plays any of three services (users, orders, products) so the
// demo needs a single build. Each process serves a little canned JSON,
// stamps every response with its instance ID (in the body and in the
// X-Instance header) so round-robin across instances is visible from curl,
// and registers itself in Consul with an HTTP health check, which is exactly
// how the gateway discovers real upstreams.
//
// Usage:
//
//	demo-service -name users [-id users-1] [-listen 127.0.0.1:0] [-advertise ADDR]
//	             [-consul 127.0.0.1:8500] [-register=true]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

func main() {
	os.Exit(run())
}

// options are the command-line settings.
type options struct {
	name, id, listen, advertise, consul string
	register                            bool
	checkInterval                       time.Duration
}

// newFlagSet declares every flag on one set, so the compose-file test can
// check the commands it names against the real flags.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("demo-service", flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "", "service to play: users, orders or products (required)")
	fs.StringVar(&o.id, "id", "", "instance ID, also the Consul service ID (default NAME-PORT)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to serve on; port 0 picks a free port")
	fs.StringVar(&o.advertise, "advertise", "", "address registered in Consul (default: the -listen host, or this host's name when listening on all interfaces, as in a container)")
	fs.StringVar(&o.consul, "consul", "", "Consul HTTP address (default CONSUL_HTTP_ADDR or 127.0.0.1:8500)")
	fs.BoolVar(&o.register, "register", true, "register in Consul on start and deregister on exit")
	fs.DurationVar(&o.checkInterval, "check-interval", time.Second, "interval of the HTTP health check registered in Consul")
	return fs
}

// run is main with an exit code, so deferred cleanup runs before os.Exit.
func run() int {
	var o options
	if err := newFlagSet(&o).Parse(os.Args[1:]); err != nil {
		return 2
	}
	name, id, listen, consul, register := &o.name, &o.id, &o.listen, &o.consul, &o.register

	log := hclog.New(&hclog.LoggerOptions{Name: "demo-" + *name, Level: hclog.Info})

	// Bind before building anything else: with -listen :0 the port, and so
	// the default instance ID, is only known once the socket exists.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("cannot listen", "addr", *listen, "error", err)
		return 1
	}
	addr := ln.Addr().(*net.TCPAddr)
	if *id == "" {
		*id = fmt.Sprintf("%s-%d", *name, addr.Port)
	}
	log = log.With("instance", *id)

	handler, err := newHandler(*name, *id, log)
	if err != nil {
		_ = ln.Close()
		log.Error("bad flags", "error", err)
		return 2
	}

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", addr.String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var agent *api.Agent
	if *register {
		agent, err = registerService(*consul, *name, *id, advertiseHost(o.advertise, addr, os.Hostname), addr.Port, o.checkInterval)
		if err != nil {
			log.Error("consul registration failed", "error", err)
			shutdown(srv, log)
			return 1
		}
		log.Info("registered in consul", "service", *name)
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	case err := <-serveErr:
		log.Error("server stopped", "error", err)
		code = 1
	}

	// Deregister before closing the server: the gateway then stops sending
	// traffic here while in-flight requests are still being answered,
	// instead of routing to a closed port until the health check fails.
	if agent != nil {
		if err := agent.ServiceDeregister(*id); err != nil {
			log.Warn("consul deregistration failed", "error", err)
			code = 1
		} else {
			log.Info("deregistered from consul")
		}
	}
	shutdown(srv, log)
	return code
}

// registerService registers the instance with the local Consul agent. The
// check interval is short so the demo reacts within a second to a killed
// instance; DeregisterCriticalServiceAfter cleans up instances that died
// without deregistering (kill -9), which would otherwise linger as critical.
func registerService(consulAddr, name, id, host string, port int, checkInterval time.Duration) (*api.Agent, error) {
	cfg := api.DefaultConfig() // honours CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, TLS env vars
	if consulAddr != "" {
		cfg.Address = consulAddr
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	reg := &api.AgentServiceRegistration{
		ID:      id,
		Name:    name,
		Address: host,
		Port:    port,
		Check: &api.AgentServiceCheck{
			CheckID:                        "service:" + id + ":http",
			Name:                           "HTTP /health",
			HTTP:                           "http://" + hostPort + "/health",
			Interval:                       checkInterval.String(),
			Timeout:                        "1s",
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	agent := client.Agent()
	if err := agent.ServiceRegister(reg); err != nil {
		return nil, err
	}
	return agent, nil
}

// advertiseHost is the address others reach us at: -advertise when given,
// else the concrete listen IP, else (0.0.0.0 or ::, where we listen but
// nobody can connect) the host name, which in a container is what other
// containers resolve.
func advertiseHost(flagValue string, addr *net.TCPAddr, hostname func() (string, error)) string {
	if flagValue != "" {
		return flagValue
	}
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		return addr.IP.String()
	}
	if h, err := hostname(); err == nil && h != "" {
		return h
	}
	return "127.0.0.1"
}

// shutdown lets in-flight requests finish, but not forever: a demo that hangs
// on Ctrl-C is worse than one that drops a slow request.
func shutdown(srv *http.Server, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("graceful shutdown failed", "error", err)
	}
}

// newHandler builds the HTTP handler for one service. It is separate from
// main so tests can exercise every route without sockets or Consul.
func newHandler(name, instance string, log hclog.Logger) (http.Handler, error) {
	d := demo{instance: instance}
	mux := http.NewServeMux()
	switch name {
	case "users":
		mux.HandleFunc("GET /users", d.listUsers)
		mux.HandleFunc("GET /users/{id}", d.getUser)
	case "orders":
		mux.HandleFunc("GET /orders", d.listOrders)
	case "products":
		mux.HandleFunc("GET /products", d.listProducts)
		mux.HandleFunc("GET /products/recommended", d.recommendedProducts)
	default:
		return nil, fmt.Errorf("unknown -name %q (want users, orders or products)", name)
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// Without a catch-all, ServeMux answers unknown paths in plain text; the
	// gateway's own errors are JSON, and so should the upstream's be, so a
	// client can always tell who answered by the body (an "instance" field).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{
			"error":    "not found",
			"path":     r.URL.Path,
			"instance": instance,
		})
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", instance)
		// Health checks arrive every second; logging them drowns the requests
		// that came through the gateway.
		if r.URL.Path != "/health" {
			log.Info("request", "method", r.Method, "path", r.URL.RequestURI())
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// demo holds what every handler needs to build its answer.
type demo struct {
	instance string
}

// User is the users service's resource.
type User struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Instance string `json:"instance,omitempty"`
}

// Order is one entry in an orders answer.
type Order struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

// Product is one entry in a products answer.
type Product struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

// catalog is the fixed product list the products service serves from.
var catalog = []Product{
	{ID: "p-1", Name: "Keyboard", Price: 49.00},
	{ID: "p-2", Name: "Mouse", Price: 19.50},
	{ID: "p-3", Name: "Monitor", Price: 189.99},
	{ID: "p-4", Name: "Headset", Price: 59.90},
	{ID: "p-5", Name: "Webcam", Price: 39.00},
}

func (d demo) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	writeJSON(w, http.StatusOK, User{ID: id, Name: "User " + id, Instance: d.instance})
}

func (d demo) listUsers(w http.ResponseWriter, _ *http.Request) {
	users := make([]User, 0, 3)
	for _, id := range []string{"1", "2", "3"} {
		users = append(users, User{ID: id, Name: "User " + id})
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "instance": d.instance})
}

func (d demo) listOrders(w http.ResponseWriter, r *http.Request) {
	user, ok := requireUser(w, r, d.instance)
	if !ok {
		return
	}
	// Derive the data from the user ID so repeated calls (and the two users
	// instances behind round-robin) agree without any shared state.
	h := seed(user)
	orders := make([]Order, 0, 3)
	for i := range int(h%3) + 1 {
		cents := (h>>(8*i))%20000 + 500
		orders = append(orders, Order{ID: fmt.Sprintf("o-%s-%d", user, i+1), Total: float64(cents) / 100})
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "orders": orders, "instance": d.instance})
}

func (d demo) listProducts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"products": catalog, "instance": d.instance})
}

func (d demo) recommendedProducts(w http.ResponseWriter, r *http.Request) {
	user, ok := requireUser(w, r, d.instance)
	if !ok {
		return
	}
	start := int(seed(user) % uint32(len(catalog)))
	products := []Product{catalog[start], catalog[(start+1)%len(catalog)]}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "products": products, "instance": d.instance})
}

// requireUser reads the mandatory ?user= parameter, answering 400 itself when
// it is missing so handlers can simply return.
func requireUser(w http.ResponseWriter, r *http.Request, instance string) (string, bool) {
	user := r.URL.Query().Get("user")
	if user == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error":    "missing query parameter: user",
			"instance": instance,
		})
		return "", false
	}
	return user, true
}

// seed turns a user ID into a stable number for deterministic fake data.
func seed(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status line is already sent; an encoding error can only mean the
	// client went away, and there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
