#!/usr/bin/env bash
# The benchmark command (README "Performance"): installs what the run
# needs, then measures the gateway against nginx and a direct backend.
#   ./bench/run.sh                   proxy load, writes bench/results/proxy.md
#   ./bench/run.sh -profile after    the same, plus the gateway's CPU profile summary in bench/results/profile-after.txt
#   ./bench/run.sh -traefik "$(./bench/build-traefik.sh)"   the same, plus Traefik (built once from its module, ~20 min)
#   ./bench/run.sh -mode freshness   change-to-traffic delays
#   ./bench/run.sh -mode tls         HTTPS and handshakes vs nginx, writes bench/results/tls.md
#   ./bench/run.sh -mode cluster     cluster rate limit over 3 then 2 replicas, writes bench/results/cluster.md
#   ./bench/run.sh -mode aggregate   an aggregate of three calls vs the three proxied, writes bench/results/aggregate.md
#   ./bench/run.sh -mode scale [-services 10000] [-per-service]   Consul load at 1,000 or 10,000 services, writes bench/results/scale-N.md
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/install-consul.sh | tail -n1):$PATH"
export PATH
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
exec go run ./bench "$@"
