#!/usr/bin/env bash
# ApplicationStart: the swap. The serving container is stopped and kept (NAME-previous) until
# ValidateService passes; if the new one does not start, the previous one is restored at once.
# Idempotent: run again in the same deployment, it finds its container running and does nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  load_config
  need_cmd docker
  need_cmd curl
  ensure_image
  start_container
}

main "$@"
