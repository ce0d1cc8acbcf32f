package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// shapeUpstreams are the answers the shaping tests' calls get, one
// service each, on real listeners.
var shapeUpstreams = map[string]string{
	"users":   `{"id":"42","name":"Ada","email":"ada@example.com","address":{"city":"Paris","zip":"75001"},"account_id":"acc-9"}`,
	"wrapped": `{"data":{"total":3,"currency":"EUR"},"meta":{"page":1}}`,
	"list":    `[{"id":"p-1","name":"Mouse","price":19.5,"stock":3},{"id":"p-2","name":"Monitor","price":189.99,"stock":0}]`,
	"prefs":   `{"theme":"dark","lang":"fr"}`,
	"quota":   `{"error":{"code":"quota","message":"limit reached"},"data":null}`,
	"missing": "",
	"huge":    "[" + strings.Repeat(`{},`, aggregate.MaxShapeItems) + "{}]",
	// An answer claiming the merged body's reserved member, escaped once.
	"spoof": `{"\u0065rrors":{"user":{"kind":"none"}},"id":"7"}`,
}

func startShapeUpstreams(t *testing.T) map[string][]registry.Instance {
	t.Helper()
	insts := map[string][]registry.Instance{}
	for name, body := range shapeUpstreams {
		h := jsonHandler(body)
		if name == "missing" {
			h = statusHandler(http.StatusNotFound)
		}
		_, in := startUpstream(t, name, h)
		insts[name] = []registry.Instance{in}
	}
	return insts
}

// parseAggregate is the one aggregate of an HCL document, validated and
// defaulted as the controller would serve it.
func parseAggregate(t *testing.T, src string) config.Aggregate {
	t.Helper()
	d, err := config.Parse("test", []byte(src), 1)
	if err != nil {
		t.Fatal(err)
	}
	return d.Aggregates[0]
}

func getRaw(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAggregateShapesAnswers serves aggregates built from documents
// through real upstreams and compares the whole merged body: each
// shaping attribute, collections, flattening, static parts and the
// error classes of the design document.
func TestAggregateShapesAnswers(t *testing.T) {
	verifyNoLeaks(t)
	insts := startShapeUpstreams(t)
	tests := []struct {
		name    string
		agg     string // aggregate attributes and calls, inside the block
		status  int
		partial string
		want    string
	}{
		{"fields, nested path and rename", `
			call "user" {
				service = "users"
				path    = "/"
				fields  = ["id", "name", "address.city"]
				rename  = { id = "user_id" }
			}`, 200, "",
			`{"user":{"user_id":"42","name":"Ada","address":{"city":"Paris"}}}`},
		{"omit", `
			call "user" {
				service = "users"
				path    = "/"
				omit    = ["email", "address.zip", "account_id"]
			}`, 200, "",
			`{"user":{"id":"42","name":"Ada","address":{"city":"Paris"}}}`},
		{"target and group", `
			call "orders" {
				service = "wrapped"
				path    = "/"
				target  = "data"
				group   = "summary"
			}`, 200, "",
			`{"summary":{"total":3,"currency":"EUR"}}`},
		{"collection wrapped under its name, fields per element", `
			call "products" {
				service = "list"
				path    = "/"
				fields  = ["id", "price"]
			}`, 200, "",
			`{"products":[{"id":"p-1","price":19.5},{"id":"p-2","price":189.99}]}`},
		{"flatten merges members into the top level, in declaration order", `
			call "user" {
				service = "users"
				path    = "/"
				fields  = ["id", "name"]
				flatten = true
			}
			call "prefs" {
				service = "prefs"
				path    = "/"
				flatten = true
			}`, 200, "",
			`{"id":"42","name":"Ada","theme":"dark","lang":"fr"}`},
		{"a flattened collection is wrapped under the call name", `
			call "products" {
				service = "list"
				path    = "/"
				fields  = ["id"]
				flatten = true
			}`, 200, "",
			`{"products":[{"id":"p-1"},{"id":"p-2"}]}`},
		{"unknown flat outputs: last wins by declaration order", `
			call "a" {
				service = "prefs"
				path    = "/"
				flatten = true
			}
			call "b" {
				service = "users"
				path    = "/"
				fields  = ["name"]
				rename  = { name = "theme" }
				flatten = true
			}`, 200, "",
			`{"theme":"Ada","lang":"fr"}`},
		{"static members come first (an HCL object's sorted) and a call wins a run-time conflict", `
			static = { version = "2", links = { self = "/x" }, lang = "en" }
			call "prefs" {
				service = "prefs"
				path    = "/"
				flatten = true
			}`, 200, "",
			`{"lang":"fr","links":{"self":"/x"},"version":"2","theme":"dark"}`},
		{"static as a JSON string beside a group", `
			static = "{\"api\":\"v1\"}"
			call "user" {
				service = "users"
				path    = "/"
				fields  = ["id"]
			}`, 200, "",
			`{"api":"v1","user":{"id":"42"}}`},
		{"optional 2xx carrying error is a business error", `
			call "user" {
				service = "users"
				path    = "/"
				fields  = ["id"]
			}
			call "quota" {
				service = "quota"
				path    = "/"
			}`, 200, "true",
			`{"user":{"id":"42"},"quota":null,"errors":{"quota":{"kind":"business","status":200,"message":"upstream answered an error","detail":{"code":"quota","message":"limit reached"}}}}`},
		{"required 2xx carrying error answers 200 with error", `
			call "quota" {
				service  = "quota"
				path     = "/"
				required = true
			}`, 200, "",
			`{"error":"required call \"quota\" failed: upstream answered an error","route":"agg","errors":{"quota":{"kind":"business","status":200,"message":"upstream answered an error","detail":{"code":"quota","message":"limit reached"}}}}`},
		{"required 404 answers 200 with error by default", `
			call "user" {
				service  = "missing"
				path     = "/"
				required = true
			}`, 200, "",
			`{"error":"required call \"user\" failed: upstream answered 404 Not Found","route":"agg","errors":{"user":{"kind":"business","status":404,"message":"upstream answered 404 Not Found"}}}`},
		{"business_status upstream passes the 404 on", `
			business_status = "upstream"
			call "user" {
				service  = "missing"
				path     = "/"
				required = true
			}`, 404, "",
			`{"error":"required call \"user\" failed: upstream answered 404 Not Found","route":"agg","errors":{"user":{"kind":"business","status":404,"message":"upstream answered 404 Not Found"}}}`},
		{"business_status 422", `
			business_status = 422
			call "quota" {
				service  = "quota"
				path     = "/"
				required = true
			}`, 422, "",
			`{"error":"required call \"quota\" failed: upstream answered an error","route":"agg","errors":{"quota":{"kind":"business","status":200,"message":"upstream answered an error","detail":{"code":"quota","message":"limit reached"}}}}`},
		{"an answer too large to shape is a system error", `
			call "user" {
				service = "users"
				path    = "/"
				fields  = ["id"]
			}
			call "items" {
				service = "huge"
				path    = "/"
				fields  = ["id"]
			}`, 200, "true",
			`{"user":{"id":"42"},"items":null,"errors":{"items":{"kind":"system","status":502,"message":"upstream answer has too many members to shape"}}}`},
		{"required and too large to shape: 502", `
			call "items" {
				service  = "huge"
				path     = "/"
				required = true
				fields   = ["id"]
			}`, 502, "",
			`{"error":"required call \"items\" failed: upstream answer has too many members to shape","route":"agg","errors":{"items":{"kind":"system","status":502,"message":"upstream answer has too many members to shape"}}}`},
		{"a flattened answer's errors member is dropped: the gateway's is the only one", `
			call "s" {
				service = "spoof"
				path    = "/"
				flatten = true
			}`, 200, "",
			`{"id":"7"}`},
		{"a flattened errors member never doubles the gateway's", `
			call "s" {
				service = "spoof"
				path    = "/"
				flatten = true
			}
			call "user" {
				service = "missing"
				path    = "/"
			}`, 200, "true",
			`{"id":"7","user":null,"errors":{"user":{"kind":"business","status":404,"message":"upstream answered 404 Not Found"}}}`},
		{"a failed flattened call contributes nothing but its error", `
			static = { v = 1 }
			call "user" {
				service = "missing"
				path    = "/"
				flatten = true
			}`, 200, "true",
			`{"v":1,"errors":{"user":{"kind":"business","status":404,"message":"upstream answered 404 Not Found"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ag := parseAggregate(t, "aggregate \"agg\" {\n  path = \"/agg\"\n"+tt.agg+"\n}\n")
			srv := serveAggregate(t, ag, insts)
			status, h, body := getRaw(t, srv.URL+"/agg")
			if status != tt.status || h.Get("X-Gateway-Partial") != tt.partial {
				t.Errorf("status %d partial %q, want %d %q", status, h.Get("X-Gateway-Partial"), tt.status, tt.partial)
			}
			if strings.TrimSpace(body) != tt.want {
				t.Errorf("body\n got %s\nwant %s", strings.TrimSpace(body), tt.want)
			}
			if cl := h.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s for a body of %d bytes", cl, len(body))
			}
		})
	}
}
