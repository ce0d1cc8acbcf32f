// Package e2e holds the gateway's black-box tests. They build the real
// binary once per run, start it against real Consul agents and loopback
// upstreams, and observe it only as an operator can: HTTP answers, the
// admin endpoints (/health, /routes, /api/state, /metrics), its log lines
// and its exit status. Nothing here imports the gateway's own packages, so
// the tests keep meaning the same thing however those are arranged.
//
// The package has no code outside its tests; run it with
//
//	PATH="$(scripts/install-consul.sh | tail -n1):$(scripts/install-pebble.sh | tail -n1):$PATH" CI=true go test -race ./e2e/
package e2e
