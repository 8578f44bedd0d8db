#!/usr/bin/env bash
# Sleeps far past its timeout; writes its child's pid to $CHILD_PIDFILE.
set -euo pipefail

main() {
  echo "sleeping 60 s"
  sleep 60 &
  echo $! >"$CHILD_PIDFILE"
  wait
}

main "$@"
