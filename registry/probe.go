package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/consul/api"
)

// The one-shot reads of `gateway check`: each asks what a watch or a
// write of the server would meet, once, bounded by the caller's context.

// ErrNoLeader is returned by Leader when the agent answers but its
// cluster has no leader: every consistent read (each watch's first) fails.
var ErrNoLeader = errors.New("consul has no leader")

// ErrNoAuthorize is wrapped by Authorize's error when the agent cannot
// answer what the token may do (its authorize endpoint is missing): the
// caller then knows only what the reads it made showed.
var ErrNoAuthorize = errors.New("consul cannot tell what the token may do")

// ErrACLDisabled is returned by Authorize when the agent runs without
// ACLs: every call is allowed, whatever the token.
var ErrACLDisabled = errors.New("consul ACLs are disabled")

// Leader returns the address of the cluster's raft leader.
func Leader(ctx context.Context, client *api.Client) (string, error) {
	var leader string
	if _, err := client.Raw().Query("/v1/status/leader", &leader, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return "", fmt.Errorf("registry: leader: %w", err)
	}
	if leader == "" {
		return "", ErrNoLeader
	}
	return leader, nil
}

// Permission is one question about the token: may it Access ("read",
// "write") the Resource ("key", "service", "node", "session", ...) named
// Segment? A key Segment ending in "/" stands for the keys under it.
type Permission struct {
	Resource, Segment, Access string
}

// MaxPermissions bounds one Authorize call, as Consul does (64).
const MaxPermissions = 64

// Authorize asks the agent at addr (as given to NewClient, with the same
// environment: token, TLS) which of perms the token holds, with the
// endpoint Consul's UI uses (POST /v1/internal/acl/authorize; the api
// client only PUTs, hence the plain request). Unlike reading the token's
// policies, it needs no acl:read, writes nothing, and evaluates the rules
// exactly as Consul will (prefixes, default policy, roles, service
// identities). It is an internal endpoint: an agent that does not have it
// gives ErrNoAuthorize, and one without ACLs ErrACLDisabled.
func Authorize(ctx context.Context, addr string, perms []Permission) ([]bool, error) {
	if len(perms) > MaxPermissions {
		return nil, fmt.Errorf("registry: authorize: %d permissions, at most %d", len(perms), MaxPermissions)
	}
	cfg := api.DefaultConfig()
	if addr != "" {
		cfg.Address = addr
	}
	// NewClient resolves the address (scheme, path prefix, unix socket),
	// the token (CONSUL_HTTP_TOKEN_FILE) and the TLS client into cfg.
	if _, err := api.NewClient(cfg); err != nil {
		return nil, fmt.Errorf("registry: consul client for %q: %w", cfg.Address, err)
	}
	host := cfg.Address
	if strings.HasPrefix(addr, "unix://") {
		host = "consul" // dialled through the socket; any name does
	}
	body, err := json.Marshal(perms)
	if err != nil {
		return nil, err
	}
	url := cfg.Scheme + "://" + host + cfg.PathPrefix + "/v1/internal/acl/authorize"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if cfg.Token != "" {
		req.Header.Set("X-Consul-Token", cfg.Token)
	}
	resp, err := cfg.HttpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry: authorize: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthorizeBytes))
	if err != nil {
		return nil, fmt.Errorf("registry: authorize: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		if strings.Contains(string(raw), "ACL support disabled") {
			return nil, ErrACLDisabled
		}
		return nil, fmt.Errorf("registry: authorize: %w", api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(raw))})
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return nil, fmt.Errorf("%w: %s", ErrNoAuthorize, resp.Status)
	default:
		err := api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(raw))}
		return nil, fmt.Errorf("registry: authorize: %w", err)
	}
	var out []struct{ Allow bool }
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != len(perms) {
		return nil, fmt.Errorf("%w: %d answers to %d questions (%v)", ErrNoAuthorize, len(out), len(perms), err)
	}
	allowed := make([]bool, len(out))
	for i, o := range out {
		allowed[i] = o.Allow
	}
	return allowed, nil
}

// maxAuthorizeBytes bounds the authorize answer: MaxPermissions short
// objects.
const maxAuthorizeBytes = 256 << 10

// ReadInstances reads key's registered instances once, as its health
// watch would; instances the token may not see make it fail with
// ErrPermissionDenied.
func ReadInstances(ctx context.Context, client *api.Client, key ServiceKey) ([]Instance, error) {
	q := (&api.QueryOptions{Datacenter: key.Datacenter}).WithContext(ctx)
	read := client.Health().Service
	if key.Connect {
		read = client.Health().Connect
	}
	entries, meta, err := read(key.Name, key.Tag, false, q)
	if err = aclChecked("the health of service "+key.Name, "service read and node read", meta, err); err != nil {
		return nil, err
	}
	return toInstances(entries), nil
}

// KnownService reports whether the catalog has any instance of key (its
// tag and datacenter too), passing or not, for `routes push` to warn
// about a route to a service that does not exist.
func KnownService(ctx context.Context, client *api.Client, key ServiceKey) (bool, error) {
	q := (&api.QueryOptions{Datacenter: key.Datacenter}).WithContext(ctx)
	var (
		n   int
		err error
	)
	if key.Connect {
		var entries []*api.CatalogService
		entries, _, err = client.Catalog().Connect(key.Name, key.Tag, q)
		n = len(entries)
	} else {
		var entries []*api.CatalogService
		entries, _, err = client.Catalog().Service(key.Name, key.Tag, q)
		n = len(entries)
	}
	if err != nil {
		return false, fmt.Errorf("registry: catalog %s: %w", key, err)
	}
	return n > 0, nil
}
