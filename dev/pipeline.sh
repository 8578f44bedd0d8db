#!/usr/bin/env bash
# The whole pipeline locally (README: `make pipeline`): Source (the branch tip, as committed) →
# Build (buildspec.yml with CodeBuild's semantics) → Deploy (appspec.yml, CodeDeploy's lifecycle
# against the dev environment's dockerd). Ends with the URL where the new version answers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

main() {
  local env_file
  env_file=$(bash dev/env.sh up)
  # shellcheck source=/dev/null
  source "$env_file"
  export GONOSUMDB='github.com/dagger/*,dagger.io/*'
  go run ./cmd/pipeline --repo "$ROOT" "$@"
}

main "$@"
