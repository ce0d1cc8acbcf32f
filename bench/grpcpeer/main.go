// Command grpcpeer is both ends of the gRPC benchmark: with -serve it is
// the upstream (grpc-go serving internal/grpctest's TestService), with
// -load the closed-loop client, which prints one JSON line of results.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gatewayco/gateway/internal/grpctest"
)

// Result is what a -load run prints.
type Result struct {
	Calls  int64         `json:"calls"`
	Errors int64         `json:"errors"`
	P50    time.Duration `json:"p50"`
	P99    time.Duration `json:"p99"`
}

func main() {
	serve := flag.String("serve", "", "serve TestService on this address")
	load := flag.String("load", "", "call UnaryCall on this address")
	conc := flag.Int("c", 32, "calls in flight at once")
	conns := flag.Int("conns", 4, "client connections the calls are spread over")
	dur := flag.Duration("d", 10*time.Second, "how long to load")
	size := flag.Int("size", 64, "payload bytes per request")
	flag.Parse()
	switch {
	case *serve != "":
		_, _, err := grpctest.Serve(*serve, &grpctest.Service{Name: "bench"})
		check(err)
		select {} // until the benchmark stops the process
	case *load != "":
		check(json.NewEncoder(os.Stdout).Encode(run(*load, *conc, *conns, *dur, *size)))
	default:
		check(fmt.Errorf("one of -serve and -load is needed"))
	}
}

// run keeps conc calls in flight for d and reports what completed.
func run(target string, conc, conns int, d time.Duration, size int) Result {
	clients := make([]testpb.TestServiceClient, conns)
	for i := range clients {
		cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		check(err)
		defer cc.Close()
		clients[i] = testpb.NewTestServiceClient(cc)
	}
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, size)}}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var res Result
	var lat []time.Duration
	var wg sync.WaitGroup
	for w := range conc {
		c := clients[w%conns]
		wg.Go(func() {
			var mine []time.Duration
			var errs int64
			for ctx.Err() == nil {
				start := time.Now()
				// Each call gets its own deadline, so the end of the run
				// does not fail the calls in flight.
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.UnaryCall(cctx, req)
				ccancel()
				if err != nil {
					errs++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Calls = int64(len(lat))
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcpeer:", err)
		os.Exit(1)
	}
}
