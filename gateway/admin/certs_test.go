package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/internal/devcert"
)

func TestCertsEndpointListsCertificatesAndRejections(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c, k, err := devcert.Generate(devcert.Options{Names: []string{"API.example.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := certs.ParseBundle(append(c, k...), now)
	if err != nil {
		t.Fatal(err)
	}
	s := certs.NewStore()
	s.Set(certs.SourceFile, []*certs.Cert{certs.NewCert(certs.SourceFile, "/tls/api.crt", tc, true)}, nil)
	s.Set(certs.SourceKV, nil, []certs.Rejected{{Kind: certs.SourceKV, Source: "gateway/certs/bad", Error: "certificate expired", At: now}})
	h := Handler(gateway.New(gateway.Options{}), nil, Certs(s, func() time.Time { return now }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/certs", nil))
	var body certsBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	if len(body.Certificates) != 1 {
		t.Fatalf("certificates %+v", body.Certificates)
	}
	got := body.Certificates[0]
	if got.Kind != "file" || got.Source != "/tls/api.crt" || !got.Default || got.ExpiresInSeconds != 30*24*3600 ||
		len(got.Names) != 1 || got.Names[0] != "api.example.com" {
		t.Errorf("certificate %+v", got)
	}
	if len(body.Rejected) != 1 || body.Rejected[0].Source != "gateway/certs/bad" || body.Rejected[0].Error != "certificate expired" {
		t.Errorf("rejected %+v", body.Rejected)
	}
}
