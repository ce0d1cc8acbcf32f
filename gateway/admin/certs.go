package admin

import (
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway/certs"
)

// Mount adds endpoints to the admin mux; Handler applies each one given.
type Mount func(*http.ServeMux)

// certView is one certificate as /certs lists it.
type certView struct {
	Names            []string  `json:"names"`
	Kind             string    `json:"kind"`
	Source           string    `json:"source"`
	NotBefore        time.Time `json:"not_before"`
	NotAfter         time.Time `json:"not_after"`
	ExpiresInSeconds int64     `json:"expires_in_seconds"`
	Default          bool      `json:"default"`
}

type certsBody struct {
	Certificates []certView       `json:"certificates"`
	Rejected     []certs.Rejected `json:"rejected"`
}

// Certs serves GET /certs: every certificate the TLS listener can serve
// (names, source, validity, seconds to expiry, whether it is the default)
// and every bundle or file a source rejected, with its error. now is the
// clock for the seconds to expiry (nil: time.Now).
func Certs(s *certs.Store, now func() time.Time) Mount {
	if now == nil {
		now = time.Now
	}
	return func(mux *http.ServeMux) {
		mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, certsState(s, now()))
		})
	}
}

func certsState(s *certs.Store, now time.Time) certsBody {
	all, rejected := s.Certs()
	body := certsBody{Certificates: make([]certView, 0, len(all)), Rejected: rejected}
	if body.Rejected == nil {
		body.Rejected = []certs.Rejected{}
	}
	for _, c := range all {
		body.Certificates = append(body.Certificates, certView{Names: c.Names, Kind: c.Kind, Source: c.Source,
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, ExpiresInSeconds: int64(c.NotAfter.Sub(now) / time.Second), Default: s.IsDefault(c)})
	}
	return body
}
