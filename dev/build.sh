#!/usr/bin/env bash
# The main job, locally (README: `make build`): the same `cmd/build all` CodeBuild runs,
# against the dev environment's engine, registry and SSM. Extra arguments go to `all`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

main() {
  local env_file
  env_file=$(bash dev/env.sh up)
  # shellcheck source=/dev/null
  source "$env_file"
  export GONOSUMDB='github.com/dagger/*,dagger.io/*'
  go run ./cmd/build all "$@"
}

main "$@"
