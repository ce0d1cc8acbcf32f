package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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

// Authorize asks the agent which of perms the client's token holds, with
// the endpoint Consul's UI uses (/v1/internal/acl/authorize). Unlike
// reading the token's policies, it needs no acl:read, writes nothing, and
// evaluates the rules exactly as Consul will (prefixes, default policy,
// roles, service identities). It is an internal endpoint: an agent that
// does not have it gives ErrNoAuthorize. With ACLs disabled every answer
// is allowed.
func Authorize(ctx context.Context, client *api.Client, perms []Permission) ([]bool, error) {
	if len(perms) > MaxPermissions {
		return nil, fmt.Errorf("registry: authorize: %d permissions, at most %d", len(perms), MaxPermissions)
	}
	var out []struct {
		Resource, Segment, Access string
		Allow                     bool
	}
	_, err := client.Raw().Write("/v1/internal/acl/authorize", perms, &out, (&api.WriteOptions{}).WithContext(ctx))
	var status api.StatusError
	switch {
	case errors.As(err, &status) && (status.Code == http.StatusNotFound || status.Code == http.StatusMethodNotAllowed):
		return nil, fmt.Errorf("%w: %w", ErrNoAuthorize, err)
	case err != nil:
		return nil, fmt.Errorf("registry: authorize: %w", err)
	case len(out) != len(perms):
		return nil, fmt.Errorf("%w: %d answers to %d questions", ErrNoAuthorize, len(out), len(perms))
	}
	allowed := make([]bool, len(out))
	for i, o := range out {
		allowed[i] = o.Allow
	}
	return allowed, nil
}

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
