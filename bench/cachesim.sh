#!/usr/bin/env bash
# CodeBuild's build cache, simulated: does a fresh build host start cold, and what does keeping
# the Dagger engine's state cost? (issue "a fresh CodeBuild host that does not start cold";
# the figures and the choice are in docs/performance.md)
#
#   source /run/webapp-dev/env && bash bench/cachesim.sh [OUT.md]
#
# Each case runs its own engine (the dev environment's binaries and config, another state
# directory) on a copy of the repository (`git archive HEAD`), the way a CodeBuild host would:
#   cold      an empty engine, one `cmd/build all`: what a host without any cache pays
#   local     LOCAL_CUSTOM_CACHE: the state directory kept in place on the same host, engine
#             restarted, then a code change
#   s3        S3 cache: the state directory archived (tar + gzip, what CodeBuild uploads), the
#             directory deleted, the archive restored on the "new host", then a code change;
#             restore time counted, archive size reported
#   s3-lossy  the same archive without extended attributes and device files, as a zip-style
#             archiver would keep it: does the restored engine still build correctly?
# The dev engine is stopped for the run (two engines cannot share the host's port 53) and
# started again at the end, as `dev/env.sh up` would.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${WEBAPP_DEV_RUN:-/run/webapp-dev}
OUT=${1:-$ROOT/bench/results/cachesim-$(date -u +%Y-%m-%dT%H%M%SZ).md}

say() { printf 'cachesim: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -z "${_EXPERIMENTAL_DAGGER_CLI_BIN:-}" ] || [ ! -f "$RUN/engine.toml" ]; then die "source $RUN/env first (dev/env.sh up)"; fi
BIN=$(dirname "$_EXPERIMENTAL_DAGGER_CLI_BIN")
WORK=$(mktemp -d /var/tmp/cachesim.XXXXXX)
ENGINE_PID=""

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }

# engine_up STATE: an engine on STATE, on its own socket; exports the runner host.
engine_up() {
  local state=$1 sock=$WORK/engine.sock
  sed -e "s#^root = .*#root = \"$state\"#" -e "s#unix://[^\"]*engine.sock#unix://$sock#" "$RUN/engine.toml" > "$WORK/engine.toml"
  rm -f "$sock"
  PATH=$BIN:$PATH setsid unshare --mount --propagation private -- \
    "$BIN/dagger-engine" --config "$WORK/engine.toml" > "$WORK/engine.log" 2>&1 < /dev/null &
  ENGINE_PID=$!
  for _ in $(seq 1 150); do [ -S "$sock" ] && break; sleep 0.2; done
  [ -S "$sock" ] || die "the engine did not start: $WORK/engine.log"
  export _EXPERIMENTAL_DAGGER_RUNNER_HOST=unix://$sock
}

engine_down() { # as build.finally does: a clean stop, so the state on disk is whole
  [ -n "$ENGINE_PID" ] || return 0
  kill -TERM -- "-$ENGINE_PID" 2>/dev/null || kill -TERM "$ENGINE_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$ENGINE_PID" 2>/dev/null || true
  ENGINE_PID=""
  ip link delete dagger0 2>/dev/null || true
}

cleanup() {
  engine_down
  rm -rf "$WORK"
  say "restarting the dev engine"
  bash "$ROOT/dev/env.sh" up >/dev/null || say "dev/env.sh up failed: run it by hand"
}

# build NAME: one `cmd/build all` of the copy, timed; a new revision each time (a new commit)
n=0
build() {
  n=$((n + 1))
  local t0 t1
  t0=$(now)
  (cd "$WORK/src" && BUILD_IMAGE_REPO=${BUILD_IMAGE_REPO%/*}/cachesim SOURCE_DATE_EPOCH=1764158400 \
    BUILD_CACHE_DIR=$WORK/memo-$1 "$WORK/build" all --out "$WORK/dist" --revision "cachesim-$$-$n" \
    > "$WORK/build-$1.log" 2>&1) || die "build $1 failed: $(tail -3 "$WORK/build-$1.log")"
  t1=$(now)
  secs "$t0" "$t1"
}

edit() { echo "# cachesim edit $(date +%s%N)" >> "$WORK/src/app/webapp/__init__.py"; }

main() {
  mkdir -p "$WORK/src" "$(dirname "$OUT")"
  (cd "$ROOT" && git archive HEAD | tar -x -C "$WORK/src")
  (cd "$ROOT" && go build -o "$WORK/build" ./cmd/build)
  trap cleanup EXIT
  say "stopping the dev engine for the run"
  local pid; read -r pid _ < "$RUN/engine.pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  ip link delete dagger0 2>/dev/null || true

  local s=$WORK/state cold local_code t0 t1 archive_s size restore_s s3_code lossy_s lossy_code lossy_ok
  say "cold: an empty engine"
  mkdir -p "$s"; engine_up "$s"
  cold=$(build cold)
  engine_down
  du -sb "$s" | cut -f1 > "$WORK/state.bytes"

  say "local: the same state directory, engine restarted, a code change"
  engine_up "$s"; edit
  local_code=$(build local)
  engine_down

  say "s3: archive the state, delete it, restore it, a code change"
  t0=$(now)
  tar --xattrs --xattrs-include='*' --acls -C "$s" -cf - . | gzip -1 > "$WORK/cache.tgz"
  t1=$(now); archive_s=$(secs "$t0" "$t1")
  size=$(stat -c %s "$WORK/cache.tgz")
  tar --no-xattrs -C "$s" -cf - . | gzip -1 > "$WORK/cache-lossy.tgz"
  rm -rf "$s"; mkdir -p "$s"
  t0=$(now)
  tar --xattrs --xattrs-include='*' --acls -C "$s" -xzf "$WORK/cache.tgz"
  t1=$(now); restore_s=$(secs "$t0" "$t1")
  engine_up "$s"; edit
  s3_code=$(build s3)
  engine_down

  say "s3-lossy: the archive without xattrs and device files"
  rm -rf "$s"; mkdir -p "$s"
  t0=$(now)
  tar --no-xattrs -C "$s" -xzf "$WORK/cache-lossy.tgz"
  find "$s" -type c -delete # a zip keeps no character devices (overlayfs whiteouts)
  t1=$(now); lossy_s=$(secs "$t0" "$t1")
  engine_up "$s"; edit
  if lossy_code=$(build lossy 2>/dev/null); then lossy_ok="built"; else lossy_ok="FAILED: $(tail -1 "$WORK/build-lossy.log")"; lossy_code="-"; fi
  engine_down

  local mb; mb=$(python3 -c "print(f'{$size/1e6:.0f}')")
  {
    echo "# CodeBuild cache, simulated — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg) at the end. Command: \`bash bench/cachesim.sh\`."
    echo "Engine state after one cold build: $(python3 -c "print(f'{$(cat "$WORK/state.bytes")/1e6:.0f}')") MB; its archive (tar + gzip -1, xattrs kept): $mb MB, written in $archive_s s."
    echo
    echo "| case | restore (s) | build (s) | total (s) |"
    echo "|---|---|---|---|"
    echo "| cold: empty engine, first build | - | $cold | $cold |"
    echo "| LOCAL_CUSTOM_CACHE: same host, state kept, code change | 0 | $local_code | $local_code |"
    echo "| S3 cache: archive restored on a new host, code change | $restore_s (+ download of $mb MB) | $s3_code | $(python3 -c "print(f'{$restore_s+$s3_code:.2f}')") + download |"
    echo "| S3, lossy archive (no xattrs, no device files) | $lossy_s | $lossy_code | $lossy_ok |"
  } > "$OUT"
  cat "$OUT"
}

main "$@"
