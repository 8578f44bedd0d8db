#!/usr/bin/env bash
# cfn-guard, the AWS CloudFormation Guard CLI that dev/lint.sh runs with the AWS Guard rules
# registry. No release binary is reachable here (GitHub is not), so it is built from crates.io with
# the crate's own Cargo.lock (--locked), once, and cached under $WEBAPP_DEV_CACHE keyed by version.
#
#   bash dev/install-cfn-guard.sh               build if missing (or wait for the build under way);
#                                               prints the binary's path
#   bash dev/install-cfn-guard.sh --background  start that build in the background if missing, return
#                                               at once (dev/env.sh up: it overlaps the other set-up)
#
# A build takes ~6 min on 2 cores, at low priority. Concurrent callers share one build (flock).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$ROOT/dev/versions.env"

CACHE=${WEBAPP_DEV_CACHE:-/var/cache/webapp-dev}
DIR=$CACHE/cfn-guard-$CFN_GUARD_VERSION
BIN=$DIR/bin/cfn-guard
LOG=$CACHE/cfn-guard-$CFN_GUARD_VERSION.log

log() { printf 'dev/install-cfn-guard: %s\n' "$*" >&2; }
die() { printf 'dev/install-cfn-guard: error: %s\n' "$*" >&2; exit 1; }

build() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.cfn-guard-$CFN_GUARD_VERSION.lock"
  flock 9 # a build under way (e.g. the background one) finishes first; then it is cached
  [ -x "$BIN" ] && return 0
  # rustup puts cargo in ~/.cargo/bin, which a non-login shell (CI) may not have on PATH
  command -v cargo >/dev/null 2>&1 || PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup, or apt-get install cargo)"
  log "building cfn-guard $CFN_GUARD_VERSION from crates.io (once; ~6 min; log: $LOG)"
  local tmp
  tmp=$(mktemp -d "$CACHE/.cfn-guard.XXXXXX")
  if ! nice -n 10 cargo install --locked --quiet cfn-guard --version "$CFN_GUARD_VERSION" \
    --root "$tmp" >"$LOG" 2>&1; then
    rm -rf "$tmp"
    die "cargo install cfn-guard $CFN_GUARD_VERSION failed: see $LOG"
  fi
  "$tmp/bin/cfn-guard" --version | grep -q " $CFN_GUARD_VERSION" ||
    die "$tmp/bin/cfn-guard is not version $CFN_GUARD_VERSION"
  chmod 755 "$tmp" # mktemp made it 0700
  rm -rf "$DIR"
  mv "$tmp" "$DIR"
  # an older version's build is no longer named by any pin
  local old
  for old in "$CACHE"/cfn-guard-*; do
    [ "$old" = "$DIR" ] || [ ! -d "$old" ] || { log "removing stale $old"; rm -rf "$old"; }
  done
}

main() {
  if [ "${1:-}" = --background ]; then
    [ -x "$BIN" ] && return 0
    mkdir -p "$CACHE"
    setsid bash "${BASH_SOURCE[0]}" </dev/null >>"$LOG.bg" 2>&1 &
    return 0
  fi
  build
  echo "$BIN"
}

main "$@"
