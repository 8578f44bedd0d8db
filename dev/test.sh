#!/usr/bin/env bash
# The whole test suite, as a new user and CI run it (README: `make test`):
# brings the dev environment up (cached after the first run), then linters, go vet, go test.
# Everything runs against the real engine, registries, moto_server and dockerd: nothing is mocked.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'dev/test: %s\n' "$*" >&2; }

main() {
  local env_file start
  env_file=$(bash dev/env.sh up)
  # shellcheck source=/dev/null
  source "$env_file"
  export GONOSUMDB='github.com/dagger/*,dagger.io/*' GOFLAGS=-mod=readonly

  start=$SECONDS
  log "lint"
  bash dev/lint.sh
  log "go vet"
  go vet ./...
  log "go test (real engine, registry, SSM, dockerd)"
  # -p 1: the packages share one engine and one dockerd on a 2-core machine.
  go test -count=1 -p 1 -timeout 60m "$@" ./...
  log "all passed in $((SECONDS - start)) s"
}

main "$@"
