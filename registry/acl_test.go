package registry

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// aclChecked types both ways Consul refuses a token, and nothing else.
func TestACLCheckedTypesRefusals(t *testing.T) {
	forbidden := api.StatusError{Code: 403, Body: "Permission denied"}
	cases := []struct {
		name   string
		meta   *api.QueryMeta
		err    error
		denied bool
	}{
		{"403", nil, fmt.Errorf("get: %w", forbidden), true},
		{"filtered", &api.QueryMeta{ResultsFilteredByACLs: true}, nil, true},
		{"plain answer", &api.QueryMeta{}, nil, false},
		{"500", nil, api.StatusError{Code: 500, Body: "No cluster leader"}, false},
		{"unreachable", nil, errors.New("dial tcp: connection refused"), false},
	}
	for _, tc := range cases {
		err := aclChecked("KV prefix \"p/\"", "key_prefix read", tc.meta, tc.err)
		if got := errors.Is(err, ErrPermissionDenied); got != tc.denied {
			t.Errorf("%s: %v, denied %v, want %v", tc.name, err, got, tc.denied)
		}
		if tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: %v does not wrap the cause", tc.name, err)
		}
	}
	// Status names a refusal before any other failure, without calling
	// it unreachable.
	s := &Status{}
	s.report(1, time.Unix(1, 0), aclChecked("KV prefix \"p/\"", "key_prefix read", &api.QueryMeta{ResultsFilteredByACLs: true}, nil))
	s.report(2, time.Unix(1, 0), errors.New("dial tcp: connection refused"))
	if err := s.Err(); !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Status.Err() = %v, want the refusal first", err)
	}
}
