#!/usr/bin/env bash
# Leaves a background child that still holds stdout/stderr (the classic CodeDeploy hang).
set -euo pipefail

main() {
  echo "starting a server the wrong way"
  sleep 30 &
  echo $! >"$CHILD_PIDFILE"
}

main "$@"
