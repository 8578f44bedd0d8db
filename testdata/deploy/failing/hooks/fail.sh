#!/usr/bin/env bash
set -euo pipefail

main() {
  echo "checking health"
  echo "fail: service answered 500" >&2
  exit 3
}

main "$@"
