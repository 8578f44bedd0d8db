#!/usr/bin/env bash
# ApplicationStart: replace the running container (if any) with one of the new image.
# Idempotent: run again, it replaces the container with an identical one.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  load_config
  need_cmd docker
  ensure_image
  start_container
}

main "$@"
