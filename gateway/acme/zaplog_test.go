package acme

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestZapNamesJoinCleanly: certmagic names its ACME client's logger
// Logger.Name()+".acme_client", which is ".acme_client" for our unnamed
// zap logger; the log must not show "gateway.acme..acme_client".
func TestZapNamesJoinCleanly(t *testing.T) {
	var out bytes.Buffer
	z := newZap(hclog.New(&hclog.LoggerOptions{Name: "acme", Output: &out}))
	z.Named(".acme_client").Info("hello")
	if got := out.String(); !strings.Contains(got, "acme.acme_client: hello") {
		t.Errorf("log line %q, want the name acme.acme_client", got)
	}
}
