#!/usr/bin/env bash
# Builds Consul from its Go module and caches the binary, because Consul has no
# Debian package and prebuilt downloads are not reachable from our machines.
# Prints the directory holding the binary on its last line, so callers can do
#   PATH="$(scripts/install-consul.sh | tail -n1):$PATH"
# Does nothing (but print) when the cached binary already has the right version.
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-1.14.8}"
# api v1.18.1 is the api module that v1.14.8 was released against; newer ones
# no longer compile with its agent code.
CONSUL_API_VERSION="${CONSUL_API_VERSION:-v1.18.1}"
CACHE_DIR="${GATEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/consul-gateway}"
BIN_DIR="$CACHE_DIR/consul-$CONSUL_VERSION/bin"
BIN="$BIN_DIR/consul"

NAME=consul VERSION="$CONSUL_VERSION"
. "$(dirname "$0")/install-lib.sh"

# Read the whole version output before comparing: piping it into `head`
# under pipefail lets SIGPIPE fail the check and trigger a needless rebuild.
cached() {
  local v
  [ -x "$BIN" ] && v="$("$BIN" version 2>/dev/null)" && [ "${v%%$'\n'*}" = "Consul v$CONSUL_VERSION" ]
}
cache_or_lock

work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log "downloading github.com/hashicorp/consul@v$CONSUL_VERSION"
src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { log "download failed"; exit 1; }

cp -r "$src" "$work/consul"
chmod -R u+w "$work/consul"
cd "$work/consul"
# The module's replace directives point at sibling directories that are not
# part of the downloaded module; use released modules instead.
go mod edit -dropreplace=github.com/hashicorp/consul/api \
            -dropreplace=github.com/hashicorp/consul/sdk \
            -dropreplace=github.com/hashicorp/consul/proto-public
go mod edit -require="github.com/hashicorp/consul/api@$CONSUL_API_VERSION"

log "building (takes a few minutes on 2 cores)"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$BIN.tmp" \
  -ldflags "-X github.com/hashicorp/consul/version.GitCommit=v$CONSUL_VERSION" .
mv "$BIN.tmp" "$BIN"
log "installed $("$BIN" version | head -n1) at $BIN"
echo "$BIN_DIR"
