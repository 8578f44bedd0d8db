#!/usr/bin/env bash
# ApplicationStart. With the proxy (scripts/proxy.sh): the new container starts beside the serving
# one on a loopback port of its own, and gets no request until ValidateService has checked it and
# switched. Without it: the swap. The serving container is stopped and kept (NAME-previous) until
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
  if proxy_wanted; then
    proxy_settings
    proxy_start_next
  else
    start_container
  fi
}

main "$@"
