package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// selfFlags control registering the gateway itself in Consul.
type selfFlags struct {
	register  bool
	name      string
	advertise string
}

func addSelfFlags(fs *flag.FlagSet, f *selfFlags) {
	fs.BoolVar(&f.register, "register", false, "register this gateway in Consul (HTTP check on the admin /health); deregister on shutdown")
	fs.StringVar(&f.name, "service-name", "gateway", "Consul service name used with -register")
	fs.StringVar(&f.advertise, "advertise", "", "address registered with -register (default: the -listen host, or the Consul node's address when -listen has none)")
}

// selfRegistration is the gateway's own catalog entry; a nil one does
// nothing, so shutdown need not know whether -register was given.
type selfRegistration struct {
	client *api.Client
	id     string
	logger hclog.Logger
}

// registerSelf registers the gateway under the addresses it actually bound
// (publicAddr, adminAddr), so ":0" listeners register their real ports.
func registerSelf(client *api.Client, f selfFlags, publicAddr, adminAddr string, logger hclog.Logger) (*selfRegistration, error) {
	s, err := selfEntry(f, publicAddr, adminAddr, os.Hostname)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	defer cancel()
	if err := registry.Register(ctx, client, s); err != nil {
		return nil, err
	}
	logger.Info("registered in consul", "service", s.Name, "id", s.ID, "address", s.Address, "port", s.Port, "check", s.CheckURL)
	return &selfRegistration{client: client, id: s.ID, logger: logger}, nil
}

// selfEntry works out the catalog entry. The check must reach the admin
// listener: its own host when it bound a concrete one (127.0.0.1 by
// default, which the local agent reaches), else the advertised address
// (containers, where the agent runs elsewhere), else loopback.
func selfEntry(f selfFlags, publicAddr, adminAddr string, hostname func() (string, error)) (registry.Self, error) {
	pubHost, pubPort, err := splitHostPort(publicAddr)
	if err != nil {
		return registry.Self{}, fmt.Errorf("-listen: %w", err)
	}
	admHost, admPort, err := splitHostPort(adminAddr)
	if err != nil {
		return registry.Self{}, fmt.Errorf("-admin: %w", err)
	}
	advertise := f.advertise
	if advertise == "" && !unspecified(pubHost) {
		advertise = pubHost
	}
	checkHost := admHost
	if unspecified(checkHost) {
		checkHost = advertise
	}
	if checkHost == "" {
		checkHost = "127.0.0.1"
	}
	host, err := hostname()
	if err != nil || host == "" {
		host = "local"
	}
	return registry.Self{
		// Host name and port keep IDs unique when several gateways share
		// an agent, and stable across restarts so a re-register replaces.
		ID:       fmt.Sprintf("%s-%s-%d", f.name, host, pubPort),
		Name:     f.name,
		Address:  advertise,
		Port:     pubPort,
		CheckURL: (&url.URL{Scheme: "http", Host: net.JoinHostPort(checkHost, strconv.Itoa(admPort)), Path: "/health"}).String(),
	}, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", port, err)
	}
	return host, p, nil
}

// unspecified reports whether host names no single address ("", 0.0.0.0, ::).
func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// deregister removes the entry; failures are logged, not returned: the
// check's DeregisterCriticalServiceAfter removes it anyway, and shutdown
// must go on draining.
func (s *selfRegistration) deregister(ctx context.Context) {
	if s == nil {
		return
	}
	if err := registry.Deregister(ctx, s.client, s.id); err != nil {
		s.logger.Warn("deregistration failed; consul removes the entry once its check stays critical", "error", err)
		return
	}
	s.logger.Info("deregistered from consul", "id", s.id)
}
