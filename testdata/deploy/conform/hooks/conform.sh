#!/usr/bin/env bash
# Records "EVENT MARKER" in $RECORD and its environment in $RECORD.MARKER.EVENT.env, writes one
# line to stdout and one to stderr. What the revision holds decides the rest (the test writes it):
#   fail_at EVENT    exit 4 at EVENT
#   sleep_at EVENT   sleep 30 at EVENT, recording "EVENT MARKER got TERM" if terminated
#   leak_at EVENT    leave a background child holding stdout at EVENT
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MARKER=$(cat "$ROOT/marker")

at() { [ -f "$ROOT/$1" ] && [ "$(cat "$ROOT/$1")" = "$LIFECYCLE_EVENT" ]; }

main() {
  printf '%s %s\n' "$LIFECYCLE_EVENT" "$MARKER" >>"$RECORD"
  env | sort >"$RECORD.$MARKER.$LIFECYCLE_EVENT.env"
  echo "stdout of $LIFECYCLE_EVENT ($MARKER)"
  echo "stderr of $LIFECYCLE_EVENT ($MARKER)" >&2
  if at sleep_at; then
    trap 'printf "%s %s got TERM\n" "$LIFECYCLE_EVENT" "$MARKER" >>"$RECORD"; exit 143' TERM
    sleep 30 &
    wait
  fi
  if at leak_at; then
    sleep 10 &
  fi
  if at fail_at; then
    echo "failing at $LIFECYCLE_EVENT on purpose" >&2
    exit 4
  fi
}

main "$@"
