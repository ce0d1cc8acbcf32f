# Sourced by the install-*.sh scripts: the cache check and build lock they
# share. The caller sets NAME, VERSION and BIN_DIR and defines cached (true
# when BIN_DIR already holds the right build), then calls cache_or_lock.

log() { echo "install-$NAME: $*" >&2; }

# cache_or_lock prints BIN_DIR and exits when the build is cached;
# otherwise it takes the build lock (two scripts starting at once, tests
# and the demo, build only once), checks again, and returns to build.
cache_or_lock() {
  if cached; then
    log "$NAME v$VERSION already at $BIN_DIR"
    echo "$BIN_DIR"
    exit 0
  fi
  mkdir -p "$BIN_DIR"
  exec 9>"$BIN_DIR/.lock"
  flock 9
  if cached; then
    log "$NAME v$VERSION built meanwhile at $BIN_DIR"
    echo "$BIN_DIR"
    exit 0
  fi
  command -v go >/dev/null || { log "go is required"; exit 1; }
}
