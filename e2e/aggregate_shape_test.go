package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// shapeDoc shapes the answers of services found through Consul, and
// exercises each error class of the design document with a required
// call: business (a 404, and a 200 carrying "error"), system (a 500) and
// timeout (the aggregate's deadline).
const shapeDoc = `
aggregate "profile" {
  path   = "/api/profile/{id}"
  static = { api = "v1" }
  call "user" {
    service  = "users"
    path     = "/users/{id}"
    required = true
    fields   = ["id", "name", "address.city"]
    rename   = { id = "user_id" }
    flatten  = true
  }
  call "orders" {
    service = "orders"
    path    = "/orders?user={id}"
    target  = "data"
    fields  = ["id", "total"]
    group   = "recent_orders"
  }
}

aggregate "classes" {
  path    = "/api/classes/{id}"
  timeout = "300ms"
  call "user" {
    service  = "users"
    path     = "/users/{id}"
    required = true
  }
}
`

func TestAggregateShapingAndErrorClassesThroughConsul(t *testing.T) {
	client, addr := startConsul(t)
	startBackendWith(t, client, "users", "users-1", func(w http.ResponseWriter, r *http.Request) {
		switch id := strings.TrimPrefix(r.URL.Path, "/users/"); id {
		case "missing":
			http.Error(w, `{"error":"no such user"}`, http.StatusNotFound)
		case "quota":
			_, _ = io.WriteString(w, `{"error":"quota exceeded"}`)
		case "boom":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "hang":
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, `{"id":"`+id+`","name":"Ada","email":"ada@example.com","address":{"city":"Paris","zip":"75001"}}`)
		}
	})
	startBackendWith(t, client, "orders", "orders-1", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":[{"id":"o-1","total":12.5,"lines":3},{"id":"o-2","total":7,"lines":1}],"page":1}`)
	})
	putRoute(t, client, "shape.hcl", shapeDoc)
	a := startGateway(t, addr)
	waitAggregates(t, a, 2)

	get := func(t *testing.T, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(a.url(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	t.Run("shaped answer", func(t *testing.T) {
		status, body := get(t, "/api/profile/42")
		want := `{"api":"v1","user_id":"42","name":"Ada","address":{"city":"Paris"},"recent_orders":[{"id":"o-1","total":12.5},{"id":"o-2","total":7}]}`
		if status != 200 || body != want {
			t.Fatalf("got %d %s\nwant 200 %s", status, body, want)
		}
	})
	for _, tt := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"business 404: 200 with error", "/api/classes/missing", 200,
			`{"error":"required call \"user\" failed: upstream answered 404 Not Found","route":"classes","errors":{"user":{"kind":"business","status":404,"message":"upstream answered 404 Not Found"}}}`},
		{"business 200 carrying error: 200 with error", "/api/classes/quota", 200,
			`{"error":"required call \"user\" failed: upstream answered an error","route":"classes","errors":{"user":{"kind":"business","status":200,"message":"upstream answered an error","detail":"quota exceeded"}}}`},
		{"system 500: 502", "/api/classes/boom", 502,
			`{"error":"required call \"user\" failed: upstream answered 500 Internal Server Error","route":"classes","errors":{"user":{"kind":"system","status":500,"message":"upstream answered 500 Internal Server Error"}}}`},
		{"timeout: 408", "/api/classes/hang", 408,
			`{"error":"required call \"user\" failed: upstream timed out","route":"classes","errors":{"user":{"kind":"timeout","status":408,"message":"upstream timed out"}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, tt.path)
			if status != tt.status || body != tt.want {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tt.status, tt.want)
			}
		})
	}
}
