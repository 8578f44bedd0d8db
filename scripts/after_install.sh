#!/usr/bin/env bash
# AfterInstall: log in to the registry (credentials from SSM) and pull the new image by digest,
# while the old container still serves.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  load_config
  need_cmd docker
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "cannot reach the Docker daemon (DOCKER_HOST=${DOCKER_HOST:-default socket})"
  ensure_image
  verify_image # the signature and provenance, before anything runs it (scripts/verify_image.sh)
}

main "$@"
