#!/usr/bin/env bash
# ApplicationStop: runs from the PREVIOUS successful revision's bundle, before the new revision is
# even downloaded. It deliberately stops nothing: the old container keeps serving while the new
# image is pulled (AfterInstall), and ApplicationStart swaps the two (docs/codedeploy.md).
# It must never fail: a broken ApplicationStop blocks every later deployment to the instance.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local revision=unknown name=webapp
  if [ -f "$BUNDLE_DIR/image.env" ]; then
    revision=$(sed -n 's/^REVISION=//p' "$BUNDLE_DIR/image.env" | head -n 1)
    name=$(sed -n 's/^CONTAINER_NAME=//p' "$BUNDLE_DIR/image.env" | head -n 1)
  fi
  log "revision ${revision:-unknown} (from $BUNDLE_DIR): leaving container ${name:-webapp} running;" \
    "ApplicationStart of the new revision replaces it once the new image is pulled"
}

main "$@"
