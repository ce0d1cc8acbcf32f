#!/usr/bin/env bash
# The project's one test command (README "Quick start", and .ci/run).
# Runs go vet and the whole test suite with the race detector. Integration
# tests start a real Consul agent, so Consul 1.14.8 is put on PATH first
# (built from source by install-consul.sh on the first run, cached after),
# as is Pebble for the ACME tests (install-pebble.sh),
# and the dashboard test a headless chromium (apt-get installed if missing).
#
# Extra arguments are appended to `go test ... ./...`, e.g.:
#   ./scripts/test.sh -run TestRouter -v
set -euo pipefail
cd "$(dirname "$0")/.."

PATH="$(scripts/install-consul.sh | tail -n1):$PATH"
# The ACME tests run against Pebble, Let's Encrypt's test CA, built and
# cached the same way.
PATH="$(scripts/install-pebble.sh | tail -n1):$PATH"
export PATH

# Deterministic, non-interactive output: no colour codes in logs, no prompts
# from git, and a test cache that does not mask flaky tests (-count=1 below).
export CI="${CI:-true}"
export NO_COLOR=1
export GIT_TERMINAL_PROMPT=0
# Tests must start their own Consul agents; never let a developer's
# environment point them at a real cluster.
unset CONSUL_HTTP_ADDR CONSUL_HTTP_TOKEN CONSUL_HTTP_TOKEN_FILE CONSUL_CACERT \
      CONSUL_CLIENT_CERT CONSUL_CLIENT_KEY CONSUL_HTTP_SSL CONSUL_NAMESPACE

# The dashboard test drives a real headless browser, and -race needs cgo,
# so a C compiler. Install Debian's packages only for what is missing, so
# repeat runs stay offline.
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "==> go vet ./..."
go vet ./...

echo "==> go test -race -count=1 ./... $*"
go test -race -count=1 ./... "$@"

# Short fuzz runs of the route-document parser, the certificate bundle
# parser and the upstream answer reader on every CI run: seeds in
# gateway/config/testdata/fuzz are replayed by the plain test run above; this
# looks for new inputs for a bounded time. FUZZTIME=0 skips it.
if [ "${FUZZTIME:-15s}" != "0" ]; then
  echo "==> go test -fuzz=FuzzParse -fuzztime=${FUZZTIME:-15s} ./gateway/config"
  go test -run='^$' -fuzz=FuzzParse -fuzztime="${FUZZTIME:-15s}" ./gateway/config
  echo "==> go test -fuzz=FuzzParseBundle -fuzztime=${FUZZTIME:-15s} ./gateway/certs"
  go test -run='^$' -fuzz=FuzzParseBundle -fuzztime="${FUZZTIME:-15s}" ./gateway/certs
  echo "==> go test -fuzz=FuzzReadAnswer -fuzztime=${FUZZTIME:-15s} ./gateway/upstream/h1"
  go test -run='^$' -fuzz=FuzzReadAnswer -fuzztime="${FUZZTIME:-15s}" ./gateway/upstream/h1
fi

# The README's other command, the local demo, end to end: it builds
# everything, starts Consul, the demo services and the gateway, and checks
# every example request (aggregate included). Every port is moved off the
# defaults, so a Consul agent or demo the developer runs (8500, 8300, 8301,
# 8080, ...) neither fails nor skips it.
echo "==> DEMO_SMOKE=1 ./scripts/dev.sh"
DEMO_SMOKE=1 GATEWAY_LISTEN=127.0.0.1:18080 GATEWAY_ADMIN=127.0.0.1:18081 GATEWAY_TLS_LISTEN=127.0.0.1:18443 \
  DEMO_CONSUL_PORT=18500 DEMO_CONSUL_SERVER_PORT=18300 DEMO_CONSUL_SERF_PORT=18301 ./scripts/dev.sh

echo "==> all tests passed"
