#!/usr/bin/env bash
# Builds Traefik from its Go module for the proxy bench's -traefik row.
# `go install .../traefik/v3/cmd/traefik@VERSION` is refused (its go.mod
# has replace directives), so this downloads the module, copies it out of
# the read-only module cache and builds inside it, where the replace
# directives apply. About 20 minutes on one core of a 2-core machine
# (-p 1, nice); the binary is cached. Prints the binary's path last.
#   ./bench/build-traefik.sh            # v3.6.12
#   TRAEFIK_VERSION=v3.6.12 ./bench/build-traefik.sh
set -euo pipefail
version="${TRAEFIK_VERSION:-v3.6.12}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/consul-gateway/traefik-${version}"
bin="$cache/traefik"
if [ -x "$bin" ]; then
  echo "build-traefik: traefik $version already at $bin" >&2
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
src="$(go mod download -json "github.com/traefik/traefik/v3@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$src" ] || { echo "build-traefik: could not download traefik $version" >&2; exit 1; }
rm -rf "$cache/src"
cp -r "$src" "$cache/src"
chmod -R u+w "$cache/src"
echo "build-traefik: building traefik $version (about 20 minutes)" >&2
(cd "$cache/src" && nice -n 19 go build -p 1 -o "$bin.tmp" ./cmd/traefik)
mv "$bin.tmp" "$bin"
rm -rf "$cache/src"
echo "$bin"
