// Command floor is the benchmark's ruler for Go proxies: the least a
// reverse proxy built on net/http's server can do (take a request, send
// it to one of the upstreams, copy the answer back), with no routing,
// policy, header hygiene or observability. What it costs per request
// against nginx is the floor of any proxy on net/http on the machine;
// what the gateway costs above it is the price of its features. -client
// picks the upstream client: net/http's Transport or the gateway's h1.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gatewayco/gateway/gateway/upstream/h1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	ups := flag.String("upstreams", "", "comma-separated host:port of the upstreams, taken in turn")
	client := flag.String("client", "h1", "upstream client: h1 or nethttp")
	flag.Parse()
	hosts := strings.Split(*ups, ",")
	std := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	var rt http.RoundTripper = std
	if *client == "h1" {
		rt = h1.New(h1.Options{Fallback: std})
	}
	var next atomic.Uint64
	buf := make(chan []byte, 64)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.WithContext(r.Context())
		u := *r.URL
		u.Scheme, u.Host = "http", hosts[next.Add(1)%uint64(len(hosts))]
		out.URL, out.RequestURI = &u, ""
		if r.ContentLength == 0 {
			out.Body = nil
		}
		res, err := rt.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		var b []byte
		select {
		case b = <-buf:
		default:
			b = make([]byte, 32<<10)
		}
		_, _ = io.CopyBuffer(w, res.Body, b)
		select {
		case buf <- b:
		default:
		}
	})
	log.Fatal(http.ListenAndServe(*listen, h))
}
