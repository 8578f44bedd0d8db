#!/usr/bin/env bash
# Appends "EVENT MARKER" to $RECORD and dumps the environment to $RECORD.EVENT.env.
set -euo pipefail

main() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  printf '%s %s\n' "$LIFECYCLE_EVENT" "$(cat "$root/marker")" >>"$RECORD"
  env | sort >"$RECORD.$LIFECYCLE_EVENT.env"
  echo "record: $LIFECYCLE_EVENT from $root" >&2
}

main "$@"
