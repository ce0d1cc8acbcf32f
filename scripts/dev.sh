#!/usr/bin/env bash
# One-command local demo: a dev Consul agent, four demo upstreams (users x2,
# orders, products) registered in it, the routes of routes.hcl pushed to KV,
# and the gateway in front of them. Ctrl-C stops everything and removes the
# temporary directory; the logs stay in DEMO_LOG_DIR.
#
# Environment:
#   GATEWAY_LISTEN  proxy listen address  (default :8080)
#   GATEWAY_ADMIN   admin listen address  (default 127.0.0.1:8081): the
#                   dashboard (/) and metrics (/metrics)
#   GATEWAY_TLS_LISTEN  HTTPS listen address (default :8443), served with a
#                   self-signed certificate for localhost generated at start
#   CONSUL_HTTP_ADDR  use the Consul agent already running there (loopback
#                   only: the demo registers services and writes
#                   gateway/routes/routes.hcl in its KV) instead of starting
#                   a dev agent; its CONSUL_HTTP_TOKEN / CONSUL_CACERT apply
#   DEMO_CONSUL_PORT  HTTP port of the dev agent the demo starts (default
#                   8500); its DNS, WAN and gRPC ports are off
#   DEMO_CONSUL_SERVER_PORT, DEMO_CONSUL_SERF_PORT  the dev agent's server
#                   RPC and LAN gossip ports (default 8300, 8301), which a
#                   second agent on the machine usually holds
#   CONSUL_BIN      use this consul binary instead of building 1.14.8
#   DEMO_LOG_DIR    where every process logs (default ./.demo/logs), kept
#                   after exit and emptied at the next start
#   DEMO_SMOKE=1    run the example requests, check them, and exit
#                   (0 when every answer was right); used by tests and reviews
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_LISTEN="${GATEWAY_LISTEN:-:8080}"
GATEWAY_ADMIN="${GATEWAY_ADMIN:-127.0.0.1:8081}"
GATEWAY_TLS_LISTEN="${GATEWAY_TLS_LISTEN:-:8443}"
DEMO_SMOKE="${DEMO_SMOKE:-0}"
DEMO_LOG_DIR="${DEMO_LOG_DIR:-$PWD/.demo/logs}"
DEMO_CONSUL_PORT="${DEMO_CONSUL_PORT:-8500}"
DEMO_CONSUL_SERVER_PORT="${DEMO_CONSUL_SERVER_PORT:-8300}"
DEMO_CONSUL_SERF_PORT="${DEMO_CONSUL_SERF_PORT:-8301}"

log() { echo "dev: $*" >&2; }

# An agent the user already runs (CONSUL_HTTP_ADDR), or a dev agent of our
# own. The user's agent keeps its token and TLS settings; our own agent gets
# none, so settings meant for some other cluster are dropped.
existing_consul=""
consul_scheme=http
if [ -n "${CONSUL_HTTP_ADDR:-}" ]; then
  CONSUL_ADDR="${CONSUL_HTTP_ADDR#http://}"
  if [ "$CONSUL_ADDR" != "${CONSUL_ADDR#https://}" ] || [ "${CONSUL_HTTP_SSL:-}" = true ]; then
    consul_scheme=https
  fi
  CONSUL_ADDR="${CONSUL_ADDR#https://}"
  CONSUL_ADDR="${CONSUL_ADDR%/}"
  case "${CONSUL_ADDR%:*}" in
    127.* | localhost | "[::1]") ;;
    *)
      echo "dev: error: CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR is not a loopback address. The demo registers" >&2
      echo "dev: services and writes routes into the agent's KV, so it only uses a local agent;" >&2
      echo "dev: unset CONSUL_HTTP_ADDR to let it start its own dev agent." >&2
      exit 1
      ;;
  esac
  existing_consul=1
else
  CONSUL_ADDR="127.0.0.1:$DEMO_CONSUL_PORT"
  unset CONSUL_HTTP_TOKEN CONSUL_HTTP_TOKEN_FILE CONSUL_CACERT CONSUL_CAPATH \
        CONSUL_CLIENT_CERT CONSUL_CLIENT_KEY CONSUL_HTTP_SSL CONSUL_NAMESPACE
fi
# Without a scheme for plain HTTP, as every Consul client reads it.
if [ "$consul_scheme" = https ]; then
  export CONSUL_HTTP_ADDR="https://$CONSUL_ADDR"
else
  export CONSUL_HTTP_ADDR="$CONSUL_ADDR"
fi

# consul_curl PATH [curl options...] calls the agent's HTTP API with the
# token and CA the gateway would use.
consul_curl() {
  local path=$1
  shift
  local opts=(-fsS)
  [ -n "${CONSUL_HTTP_TOKEN:-}" ] && opts+=(-H "X-Consul-Token: $CONSUL_HTTP_TOKEN")
  [ -n "${CONSUL_CACERT:-}" ] && opts+=(--cacert "$CONSUL_CACERT")
  curl "${opts[@]}" "$@" "$consul_scheme://$CONSUL_ADDR$path"
}

# ---- processes and cleanup ------------------------------------------------

tmp=""
logging=""
consul_pid=""
gateway_pid=""
svc_pids=()

# show_logs prints the end of every log, so a failed start explains itself
# in the terminal too.
show_logs() {
  local f
  for f in "$DEMO_LOG_DIR"/*.log; do
    [ -e "$f" ] || continue
    echo "----- last lines of $(basename "$f") -----" >&2
    tail -n 15 "$f" >&2 || true
  done
}

die() {
  log "error: $*"
  show_logs
  exit 1
}

# stop sends TERM to the given processes and waits up to 5s for them, then
# KILLs the rest: a hung child must never keep the demo (or CI) from exiting.
stop() {
  [ "$#" -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + 5)) p
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Reverse start order: the gateway first so no request hits a stopping
  # upstream, the services while Consul is still up so they can deregister,
  # Consul last.
  [ -n "$gateway_pid" ] && stop "$gateway_pid"
  [ "${#svc_pids[@]}" -gt 0 ] && stop "${svc_pids[@]}"
  [ -n "$consul_pid" ] && stop "$consul_pid"
  [ -n "$tmp" ] && rm -rf "$tmp"
  [ -n "$logging" ] && log "logs kept in $DEMO_LOG_DIR/"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start runs a command in the background with its output in
# $DEMO_LOG_DIR/NAME.log
# and leaves its pid in $started. (Not printed: $(start ...) would make the
# process a grandchild, which `wait` cannot see.)
started=""
start() {
  local name=$1
  shift
  "$@" >"$DEMO_LOG_DIR/$name.log" 2>&1 &
  started=$!
}

# wait_until polls CMD... every 0.2s until it succeeds. It gives up after
# TIMEOUT seconds, or as soon as process PID (if non-empty) has exited, so a
# crash is reported at once rather than as a timeout.
wait_until() {
  local what=$1 timeout=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      die "$what: process exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

# port_in_use tells whether something accepts connections on HOST:PORT,
# using bash's /dev/tcp so no extra tool is needed.
port_in_use() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# client_addr turns a listen address (":8080", "0.0.0.0:8080",
# "127.0.0.1:8081") into one curl can reach.
client_addr() {
  local host=${1%:*} port=${1##*:}
  case "$host" in "" | 0.0.0.0 | "[::]" | "::") host=localhost ;; esac
  echo "$host:$port"
}

PROXY="$(client_addr "$GATEWAY_LISTEN")"
ADMIN="$(client_addr "$GATEWAY_ADMIN")"
TLS="$(client_addr "$GATEWAY_TLS_LISTEN")"

# ---- preflight ------------------------------------------------------------

command -v go >/dev/null || die "go is required"
command -v curl >/dev/null || die "curl is required"

# Every taken port is found before any message, so one suggested command
# line moves them all: fixing one port at a time, run after run, is what
# a newcomer would otherwise do.
taken_vars=()
taken_addrs=()
for pair in "GATEWAY_LISTEN=$PROXY" "GATEWAY_ADMIN=$ADMIN" "GATEWAY_TLS_LISTEN=$TLS"; do
  hp=${pair#*=}
  h=${hp%:*}
  [ "$h" = localhost ] && h=127.0.0.1
  if port_in_use "$h" "${hp##*:}"; then
    taken_vars+=("${pair%%=*}")
    taken_addrs+=("$hp")
  fi
done
if [ -z "$existing_consul" ]; then
  for pair in "DEMO_CONSUL_PORT=$DEMO_CONSUL_PORT" "DEMO_CONSUL_SERVER_PORT=$DEMO_CONSUL_SERVER_PORT" \
              "DEMO_CONSUL_SERF_PORT=$DEMO_CONSUL_SERF_PORT"; do
    if port_in_use 127.0.0.1 "${pair#*=}"; then
      taken_vars+=("${pair%%=*}")
      taken_addrs+=("127.0.0.1:${pair#*=}")
    fi
  done
fi
if [ "${#taken_vars[@]}" -gt 0 ]; then
  # The suggestion: each taken port moved by 10000 (an address keeps its
  # host), which is free on most machines.
  suggest=""
  for i in "${!taken_vars[@]}"; do
    var=${taken_vars[$i]} hp=${taken_addrs[$i]}
    echo "dev: error: $hp is already in use (another demo still running?); $var moves it." >&2
    port=${hp##*:}
    case "$var" in
      GATEWAY_*) suggest+="$var=127.0.0.1:$((port + 10000)) " ;;
      *) suggest+="$var=$((port + 10000)) " ;;
    esac
  done
  echo "dev: Stop what listens there, or move the demo, e.g.:" >&2
  echo "dev:   $suggest./scripts/dev.sh" >&2
  if [ -z "$existing_consul" ] && [[ " ${taken_vars[*]} " == *" DEMO_CONSUL_PORT "* ]]; then
    echo "dev: If a Consul agent runs at 127.0.0.1:$DEMO_CONSUL_PORT, the demo can use it instead:" >&2
    echo "dev:   CONSUL_HTTP_ADDR=127.0.0.1:$DEMO_CONSUL_PORT ./scripts/dev.sh" >&2
  fi
  exit 1
fi

# Only the demo's own files: DEMO_LOG_DIR may be a directory with others.
mkdir -p "$DEMO_LOG_DIR"
rm -f "$DEMO_LOG_DIR"/*.log
logging=1

if [ -n "$existing_consul" ]; then
  consul_bin=""
elif [ -n "${CONSUL_BIN:-}" ]; then
  consul_bin="$CONSUL_BIN"
else
  log "locating Consul 1.14.8 (the first run builds it, a few minutes)"
  consul_bin="$(scripts/install-consul.sh | tail -n1)/consul"
fi
[ -z "$existing_consul" ] && { [ -x "$consul_bin" ] || die "no consul binary at $consul_bin"; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/gateway-dev.XXXXXX")"

log "building gateway and demo-service"
go build -o "$tmp/gateway" .
go build -o "$tmp/demo-service" ./examples/demo-service
go build -o "$tmp/devcert" ./examples/devcert
# A certificate for localhost, its own CA: curl trusts it with --cacert.
"$tmp/devcert" -dir "$tmp" || die "devcert failed"

# ---- start everything -----------------------------------------------------

consul_has_leader() {
  local leader
  leader="$(consul_curl /v1/status/leader)" || return 1
  [ -n "$leader" ] && [ "$leader" != '""' ]
}
if [ -n "$existing_consul" ]; then
  log "using the Consul agent at $CONSUL_HTTP_ADDR"
  consul_has_leader || die "the Consul agent at $CONSUL_HTTP_ADDR does not answer with a leader ($(consul_curl /v1/status/leader 2>&1 || true))"
else
  log "starting consul agent -dev on $CONSUL_ADDR (log: $DEMO_LOG_DIR/consul.log)"
  start consul "$consul_bin" agent -dev -client 127.0.0.1 -log-level info \
    -http-port "$DEMO_CONSUL_PORT" -dns-port -1 -serf-wan-port -1 \
    -server-port "$DEMO_CONSUL_SERVER_PORT" -serf-lan-port "$DEMO_CONSUL_SERF_PORT" \
    -hcl 'ports { grpc = -1, grpc_tls = -1 }'
  consul_pid=$started
  wait_until "consul leader" 30 "$consul_pid" consul_has_leader
fi

log "starting demo services: users x2, orders, products"
for svc in users users orders products; do
  n=${#svc_pids[@]}
  start "$svc-$n" "$tmp/demo-service" -name "$svc" -register
  svc_pids+=("$started")
done

# passing_count SERVICE prints how many of its health checks pass; every demo
# instance registers exactly one check, so that is the passing instances.
passing_count() {
  consul_curl "/v1/health/checks/$1" -G \
    --data-urlencode 'filter=Status == "passing"' | grep -o '"CheckID"' | wc -l
}
# At least: a user's agent may hold instances of its own.
all_passing() {
  [ "$(passing_count users)" -ge 2 ] &&
    [ "$(passing_count orders)" -ge 1 ] &&
    [ "$(passing_count products)" -ge 1 ]
}
wait_until "demo services to pass their health checks" 30 "" all_passing
for p in "${svc_pids[@]}"; do
  kill -0 "$p" 2>/dev/null || die "a demo service exited"
done

log "pushing routes.hcl to Consul KV"
"$tmp/gateway" routes push routes.hcl >"$DEMO_LOG_DIR/push.log" 2>&1 ||
  die "gateway routes push routes.hcl failed: $(cat "$DEMO_LOG_DIR/push.log")"

log "starting gateway on $GATEWAY_LISTEN, HTTPS on $GATEWAY_TLS_LISTEN, admin on $GATEWAY_ADMIN (log: $DEMO_LOG_DIR/gateway.log)"
start gateway "$tmp/gateway" -listen "$GATEWAY_LISTEN" -admin "$GATEWAY_ADMIN" \
  -tls-listen "$GATEWAY_TLS_LISTEN" -tls-cert "$tmp/gateway.crt" -tls-key "$tmp/gateway.key"
gateway_pid=$started
wait_until "gateway admin /health" 30 "$gateway_pid" curl -fsS "http://$ADMIN/health"

# ---- show or check the demo -----------------------------------------------

if [ "$DEMO_SMOKE" != 1 ]; then
  cat <<MSG

Gateway demo is running. Try:

  curl $PROXY/api/users/42        # twice: "instance" alternates (round robin)
  curl $PROXY/api/users/42
  curl '$PROXY/api/orders?user=42'
  curl '$PROXY/api/products/recommended?user=42'
  curl $PROXY/api/dashboard/42    # aggregate: users, orders, products in one
  curl $PROXY/api/profile/42      # aggregate shaped: fields, rename, flatten, static
  curl '$PROXY/api/orders-summary?user=42'
  curl $PROXY/api/orders-summary  # business error: 200 with "error"
  curl --cacert $tmp/gateway.crt https://$TLS/api/users/42   # HTTPS (HTTP/2)
  curl $ADMIN/routes              # routing table and instances
  curl $ADMIN/health
  curl $ADMIN/certs               # certificates served, with expiry

Dashboard: http://$ADMIN/
Metrics:   http://$ADMIN/metrics
Consul UI: $consul_scheme://$CONSUL_ADDR/ui/
Logs:      $DEMO_LOG_DIR/ (kept after exit)

Press Ctrl-C to stop everything.
MSG
  # Return as soon as any child dies, so a crashed gateway is not mistaken
  # for a running demo.
  set +e
  wait -n
  rc=$?
  set -e
  die "a demo process exited (status $rc)"
fi

# Smoke mode: each check retries briefly, because the gateway learns about
# routes and instances through Consul watches, a moment after it is healthy.
failures=0
body=""

# fetch URL: sets $code and $body; never fails. curl_extra holds more
# curl options (the CA for HTTPS checks).
curl_extra=()
fetch() {
  code="$(curl -sS ${curl_extra[@]+"${curl_extra[@]}"} -o "$tmp/body" -w '%{http_code}' "$1" 2>"$tmp/curl.err")" || code=000
  body="$(cat "$tmp/body" 2>/dev/null || true)"
  [ "$code" != 000 ] || body="$(cat "$tmp/curl.err")"
}

# check URL REGEX...: passes when URL answers 200 with a body matching every
# extended REGEX. Patterns allow optional spaces after ':' because the admin
# API indents its JSON and the demo services do not.
check() {
  local url=$1 pat ok
  shift
  for _ in $(seq 1 25); do
    fetch "$url"
    ok=1
    [ "$code" = 200 ] || ok=0
    for pat in "$@"; do
      grep -qE -- "$pat" <<<"$body" || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.2
  done
  if [ "$ok" = 1 ]; then
    # The dashboard page and /metrics are long: their start is enough.
    local shown="$body"
    if [ "${#body}" -gt 2000 ]; then
      shown="${body%%$'\n'*}"
      shown="${shown:0:160} (… ${#body} bytes)"
    fi
    echo "ok    curl $url -> $code $shown"
  else
    echo "FAIL  curl $url -> $code $body (want 200 containing: $*)"
    failures=$((failures + 1))
  fi
}

instance_of() { sed -n 's/.*"instance": *"\([^"]*\)".*/\1/p' <<<"$1"; }

echo
users_json=('"id": *"42"' '"name": *"User 42"' '"instance": *"users-')
check "$PROXY/api/users/42" "${users_json[@]}"
first="$(instance_of "$body")"
check "$PROXY/api/users/42" "${users_json[@]}"
second="$(instance_of "$body")"
if [ -n "$first" ] && [ "$first" != "$second" ]; then
  echo "ok    round robin: $first then $second"
else
  echo "FAIL  round robin: two requests went to '$first' and '$second'"
  failures=$((failures + 1))
fi
check "$PROXY/api/orders?user=42" '"user": *"42"' '"orders": *\[ *\{' '"instance": *"orders-'
check "$PROXY/api/products/recommended?user=42" '"user": *"42"' '"products": *\[ *\{' '"instance": *"products-'
check "$PROXY/api/dashboard/42" '"user": *\{ *"id": *"42"' '"orders": *\{' '"recommendations": *\{'
check "$PROXY/api/profile/42" '^\{"api_version":"1","docs":"[^"]*","user_id":"42","name":"User 42","order_ids":\[\{"id":"o-42-1"\}' '"picks":\[\{"id":"p-[0-9]","title":"[A-Za-z]+"\},'
check "$PROXY/api/orders-summary?user=42" '^\{"orders":\[\{"id":"o-42-1","total":[0-9.]+\}'
check "$PROXY/api/orders-summary" '^\{"error":"required call \\"orders\\" failed: upstream answered 400 Bad Request"' '"kind":"business","status":400'
check "$ADMIN/routes" '"routes": *\[' '"name": *"users"' '"name": *"orders"' '"name": *"products"' '"name": *"user-dashboard"' '"name": *"user-profile"' '"name": *"orders-summary"'
check "$ADMIN/health" '"status": *"ok"'
curl_extra=(--cacert "$tmp/gateway.crt" --http2)
check "https://$TLS/api/users/42" "${users_json[@]}"
curl_extra=()
check "$ADMIN/certs" '"source": *"[^"]*gateway.crt"' '"default": *true'
check "$ADMIN/" 'id="trends"'
check "$ADMIN/api/series" '"name": *"users"' '"requests_per_second": *\['
check "$ADMIN/metrics" 'gateway_requests_total\{code="200",method="GET",route="users"\}'
echo "try:  curl --cacert $tmp/gateway.crt https://$TLS/api/users/42"
echo "dashboard: http://$ADMIN/"
echo "metrics:   http://$ADMIN/metrics"

if [ "$failures" -ne 0 ]; then
  die "$failures smoke check(s) failed"
fi
log "smoke test passed"
