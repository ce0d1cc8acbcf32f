package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/consul/api"
)

// ErrPermissionDenied is wrapped by the error of a read that Consul's ACLs
// refused, whether Consul answered 403 (a token it does not know, a
// ?connect health read without service read) or, as it does for KV lists
// and health reads, answered 200 with the entries the token may not see
// silently left out (X-Consul-Results-Filtered-By-ACLs). The second is
// why this exists: taken at face value it is an empty routing table or a
// service without instances, which looks healthy. A watch treats it like
// any failed call: it keeps its last snapshot, retries with backoff and
// reports the error to Status, so /health names it.
var ErrPermissionDenied = errors.New("consul ACLs denied the gateway's token")

// aclChecked wraps a failed or filtered read of what (e.g. `KV prefix
// "gateway/routes/"`) in ErrPermissionDenied, naming the permission the
// token lacks; other errors and unfiltered answers pass unchanged.
func aclChecked(what, need string, meta *api.QueryMeta, err error) error {
	if err != nil {
		if IsPermissionDenied(err) {
			return fmt.Errorf("%w: reading %s (needs %s): %w", ErrPermissionDenied, what, need, err)
		}
		return err
	}
	if meta != nil && meta.ResultsFilteredByACLs {
		return fmt.Errorf("%w: reading %s: entries were hidden from the token (needs %s)", ErrPermissionDenied, what, need)
	}
	return nil
}

// IsPermissionDenied reports whether err is Consul refusing the token: a
// 403 answer (permission denied, or an ACL token Consul does not know), or
// an error already wrapping ErrPermissionDenied.
func IsPermissionDenied(err error) bool {
	if errors.Is(err, ErrPermissionDenied) {
		return true
	}
	var status api.StatusError
	return errors.As(err, &status) && status.Code == http.StatusForbidden
}
