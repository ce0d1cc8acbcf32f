#!/usr/bin/env bash
# Builds Pebble (Let's Encrypt's test ACME CA) and pebble-challtestsrv (its
# mock DNS and challenge server) from their Go module and caches the binaries,
# like install-consul.sh: the ACME tests run against a real CA, and prebuilt
# downloads are not reachable from our machines.
# Prints the directory holding the binaries on its last line, so callers can do
#   PATH="$(scripts/install-pebble.sh | tail -n1):$PATH"
# Does nothing (but print) when the cached binaries already have the right
# version.
set -euo pipefail

PEBBLE_VERSION="${PEBBLE_VERSION:-2.10.3}"
CACHE_DIR="${GATEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/consul-gateway}"
BIN_DIR="$CACHE_DIR/pebble-$PEBBLE_VERSION/bin"
STAMP="$BIN_DIR/.version"

NAME=pebble VERSION="$PEBBLE_VERSION"
. "$(dirname "$0")/install-lib.sh"

# Pebble's binaries print no version, so a stamp written after both are
# built stands for it.
cached() {
  [ -x "$BIN_DIR/pebble" ] && [ -x "$BIN_DIR/pebble-challtestsrv" ] &&
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "v$PEBBLE_VERSION" ]
}
cache_or_lock

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# go install module@version builds with the module's own go.mod, outside this
# repository's module, into GOBIN.
log "building github.com/letsencrypt/pebble/v2@v$PEBBLE_VERSION"
rm -f "$STAMP"
for cmd in pebble pebble-challtestsrv; do
  GOBIN="$work" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install "github.com/letsencrypt/pebble/v2/cmd/$cmd@v$PEBBLE_VERSION"
  mv "$work/$cmd" "$BIN_DIR/$cmd"
done
echo "v$PEBBLE_VERSION" >"$STAMP"
log "installed pebble v$PEBBLE_VERSION at $BIN_DIR"
echo "$BIN_DIR"
