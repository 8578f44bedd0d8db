#!/usr/bin/env bash
# ValidateService: the container runs the new image and answers GET /healthz with 2xx within
# HEALTH_TIMEOUT seconds; otherwise fail with the container's last log lines.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fail_with_logs() {
  log "last log lines of $CONTAINER_NAME:"
  docker logs --tail 20 "$CONTAINER_NAME" 2>&1 | sed 's/^/  | /' >&2 || true
  die "$*"
}

main() {
  load_config
  need_cmd docker
  need_cmd curl
  local url=http://127.0.0.1:$HOST_PORT/healthz deadline=$((SECONDS + HEALTH_TIMEOUT))
  local state running_image body=
  running_image=$(docker inspect --format '{{.Config.Image}}' "$CONTAINER_NAME" 2>/dev/null) ||
    die "no container $CONTAINER_NAME (ApplicationStart did not run or it was removed)"
  [ "$running_image" = "$IMAGE" ] || fail_with_logs "$CONTAINER_NAME runs $running_image, expected $IMAGE"
  while :; do
    state=$(docker inspect --format '{{.State.Status}}' "$CONTAINER_NAME" 2>/dev/null) || state=missing
    case $state in
      running | restarting) ;;
      *) fail_with_logs "container $CONTAINER_NAME is $state" ;;
    esac
    if body=$(curl --fail --silent --show-error --max-time 2 "$url" 2>&1); then
      log "healthy: $url answered: $body"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail_with_logs "$url not healthy after ${HEALTH_TIMEOUT}s; last answer: $body"
    fi
    sleep 0.5
  done
}

main "$@"
