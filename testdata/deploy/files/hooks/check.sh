#!/usr/bin/env bash
# The Install event ran before AfterInstall: the config is in place.
set -euo pipefail

main() {
  [ -f "$FS_ROOT/etc/webapp/deploy.env" ] || { echo "check: config not installed" >&2; exit 1; }
}

main "$@"
