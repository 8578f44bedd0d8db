#!/usr/bin/env bash
# The whole test suite, as a new user and CI run it (README: `make test`, which runs this inside
# the dev environment: dev/with-env.sh). Linters, go vet, then go test against the real engine,
# registries, moto_server and dockerd: nothing is mocked.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'dev/test: %s\n' "$*" >&2; }

main() {
  [ -n "${_EXPERIMENTAL_DAGGER_RUNNER_HOST:-}" ] || { log "run me through dev/with-env.sh (make test)"; exit 2; }
  local start=$SECONDS
  log "lint"
  bash dev/lint.sh
  log "go vet"
  GOFLAGS=-mod=readonly go vet ./...
  log "go test (real engine, registry, SSM, dockerd)"
  # -p 1: the packages share one engine and one dockerd on a 2-core machine.
  GOFLAGS=-mod=readonly go test -count=1 -p 1 -timeout 60m "$@" ./...
  log "all passed in $((SECONDS - start)) s"
}

main "$@"
