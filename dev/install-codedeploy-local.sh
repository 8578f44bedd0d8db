#!/usr/bin/env bash
# Installs the REAL CodeDeploy agent's `codedeploy-local` (the test oracle of the deploy hooks and
# of dev/codedeploy) from ../shared/peers with the peers' own install script, once per
# version, under $WEBAPP_DEV_CACHE; links it as $WEBAPP_DEV_CACHE/bin/codedeploy-local.
#
#   bash dev/install-codedeploy-local.sh      (root; dev/env.sh up calls it; prints the launcher)
#
# Where the peers are: $WEBAPP_PEERS, else the first shared/peers beside the repository or one of
# its parents (CI: ../shared beside the checkout). Without them it says so and installs nothing:
# the tests that need the agent then fail naming this script.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$ROOT/dev/versions.env"
CACHE=${WEBAPP_DEV_CACHE:-/var/cache/webapp-dev}
PREFIX=$CACHE/codedeploy-local-$CODEDEPLOY_AGENT_VERSION
LINK=$CACHE/bin/codedeploy-local

log() { printf 'dev/install-codedeploy-local: %s\n' "$*" >&2; }

find_peers() {
  local dir=$ROOT
  if [ -n "${WEBAPP_PEERS:-}" ]; then echo "$WEBAPP_PEERS"; return 0; fi
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    if [ -f "$dir/shared/peers/install-codedeploy-local.sh" ]; then echo "$dir/shared/peers"; return 0; fi
  done
  return 1
}

main() {
  local peers launcher
  # The cached install is only half of it: the agent runs on Debian's ruby and gems, which
  # can be purged while the cache stays (an apt autoremove). Without ruby, the peers' script
  # runs again: it re-checks its packages and installs what is missing.
  if [ -x "$PREFIX/bin/codedeploy-local" ] && [ -f "$PREFIX/.complete" ] && command -v ruby >/dev/null; then
    ln -sfn "$PREFIX/bin/codedeploy-local" "$LINK"
    echo "$LINK"
    return 0
  fi
  if ! peers=$(find_peers); then
    log "no shared/peers beside $ROOT (set WEBAPP_PEERS=DIR): codedeploy-local not installed;" \
      "the real-agent deploy tests will fail until it is"
    return 0
  fi
  [ -f "$peers/aws-codedeploy-agent-$CODEDEPLOY_AGENT_VERSION.tar.gz" ] || {
    log "error: $peers has no aws-codedeploy-agent-$CODEDEPLOY_AGENT_VERSION.tar.gz (dev/versions.env pins $CODEDEPLOY_AGENT_VERSION)"
    exit 1
  }
  log "installing codedeploy-local $CODEDEPLOY_AGENT_VERSION from $peers into $PREFIX (once)"
  launcher=$(bash "$peers/install-codedeploy-local.sh" "$PREFIX" | tail -n 1)
  [ -x "$launcher" ] || { log "error: $peers/install-codedeploy-local.sh printed no launcher"; exit 1; }
  touch "$PREFIX/.complete"
  mkdir -p "$CACHE/bin"
  ln -sfn "$launcher" "$LINK"
  echo "$LINK"
}

main "$@"
