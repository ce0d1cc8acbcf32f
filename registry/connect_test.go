package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestEvaluateIntentions: the first intention (highest precedence) naming
// the gateway or "*" as source decides; others are skipped; none means no
// denial (the upstream's default decides).
func TestEvaluateIntentions(t *testing.T) {
	deny := func(src string) *api.Intention {
		return &api.Intention{SourceName: src, DestinationName: "api", Action: api.IntentionActionDeny}
	}
	allow := func(src string) *api.Intention {
		return &api.Intention{SourceName: src, DestinationName: "api", Action: api.IntentionActionAllow}
	}
	l7 := &api.Intention{SourceName: "edge", DestinationName: "api", Permissions: []*api.IntentionPermission{{Action: api.IntentionActionDeny}}}
	tests := []struct {
		name   string
		list   []*api.Intention
		denied bool
		by     string
	}{
		{"none", nil, false, ""},
		{"other source only", []*api.Intention{deny("web")}, false, ""},
		{"exact deny", []*api.Intention{deny("web"), deny("edge"), allow("*")}, true, "edge => api"},
		{"exact allow above wildcard deny", []*api.Intention{allow("edge"), deny("*")}, false, "edge => api"},
		{"wildcard deny", []*api.Intention{deny("*")}, true, "* => api"},
		{"L7 permissions allow the connection", []*api.Intention{l7, deny("*")}, false, "edge => api"},
		{"nil entry", []*api.Intention{nil, deny("edge")}, true, "edge => api"},
		{"peer source skipped", []*api.Intention{{SourceName: "edge", SourcePeer: "p", Action: api.IntentionActionDeny}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := evaluate(tt.list, "edge")
			if v.Denied != tt.denied || v.Intention != tt.by {
				t.Fatalf("got %+v, want denied %v by %q", v, tt.denied, tt.by)
			}
		})
	}
}

// TestConnectAnswersBounded: leaf and root answers past their bounds, or
// unusable, are refused with ErrConnectAnswer.
func TestConnectAnswersBounded(t *testing.T) {
	big := strings.Repeat("x", MaxConnectPEMBytes+1)
	for name, err := range map[string]error{
		"nil leaf":     func() error { _, err := toLeaf(nil); return err }(),
		"huge leaf":    func() error { _, err := toLeaf(&api.LeafCert{CertPEM: big}); return err }(),
		"garbage leaf": func() error { _, err := toLeaf(&api.LeafCert{CertPEM: "x", PrivateKeyPEM: "y"}); return err }(),
		"no roots":     func() error { _, err := toRoots(&api.CARootList{TrustDomain: "t"}); return err }(),
		"huge root": func() error {
			_, err := toRoots(&api.CARootList{TrustDomain: "t", Roots: []*api.CARoot{{RootCertPEM: big}}})
			return err
		}(),
		"garbage root": func() error {
			_, err := toRoots(&api.CARootList{TrustDomain: "t", Roots: []*api.CARoot{{RootCertPEM: "x"}}})
			return err
		}(),
		"too many": func() error {
			_, err := toRoots(&api.CARootList{TrustDomain: "t", Roots: make([]*api.CARoot, MaxConnectRoots+1)})
			return err
		}(),
	} {
		if !errors.Is(err, ErrConnectAnswer) {
			t.Errorf("%s: %v, want ErrConnectAnswer", name, err)
		}
	}
}
