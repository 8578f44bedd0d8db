#!/usr/bin/env bash
# ValidateService. With the proxy (scripts/proxy.sh): the new container answers its health path on
# its own port, the proxy switches to it, watches it WATCH_SECONDS and switches back on a failure;
# the old container drains and stops (kept). Without it: the container runs the new image and answers GET $HEALTH_PATH (image.env) with
# 2xx within HEALTH_TIMEOUT seconds. Then the previous container is removed (its image is kept
# for a rollback) and older images of the app are pruned. Otherwise the previous container is
# restored, and the hook fails with the new container's last log lines: the deployment fails.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# fail_and_restore WHY: the new container is stopped and kept as NAME-failed, the previous one
# serves again, and the hook fails naming why.
fail_and_restore() {
  trap - TERM
  log "last log lines of $CONTAINER_NAME:"
  docker logs --tail 20 "$CONTAINER_NAME" 2>&1 | sed 's/^/  | /' >&2 || true
  # only this deployment's container is replaced (never one a rollback already put back)
  if container_exists "$CONTAINER_NAME-previous" && [ "$(inspect "$CONTAINER_NAME" '{{.Config.Image}}')" = "$IMAGE" ]; then
    docker stop --time "$STOP_TIMEOUT" "$CONTAINER_NAME" >/dev/null 2>&1 || true
    remove "$CONTAINER_NAME-failed" "replaced"
    docker rename "$CONTAINER_NAME" "$CONTAINER_NAME-failed"
  fi
  restore_previous "$1"
  die "$*"
}

main() {
  # ApplicationStart has swapped already: a TERM (the agent's hook timeout) even before the
  # configuration is read must bring the previous container back. It is remembered here and acted
  # on once the configuration says which container that is.
  local terminated=
  trap 'terminated=1' TERM
  # The agent closes the hook's pipes as it sends the TERM, and bash reports a child killed by it
  # ("Terminated") on stderr: with SIGPIPE's default that write kills the hook before its trap
  # can restore anything (measured: 18 of 20 timeouts). Ignored, the write just fails.
  trap '' PIPE
  load_config
  if proxy_wanted; then
    proxy_settings
    proxy_validate # its TERM trap acts on a TERM remembered until then
    return 0
  fi
  trap 'output_after_term; fail_and_restore "ValidateService was terminated (hook timeout) before it could check health"' TERM
  if [ -n "$terminated" ]; then
    output_after_term
    fail_and_restore "ValidateService was terminated (hook timeout) before it could check health"
  fi
  need_cmd docker
  need_cmd curl
  local url=http://$HOST_ADDR:$HOST_PORT$HEALTH_PATH
  local running_image previous_image body=
  running_image=$(inspect "$CONTAINER_NAME" '{{.Config.Image}}')
  [ -n "$running_image" ] || die "no container $CONTAINER_NAME (ApplicationStart did not run or it was removed)"
  # Not ours: ApplicationStart did not swap (or a rollback already happened): fail, touch nothing.
  [ "$running_image" = "$IMAGE" ] || die "$(describe "$CONTAINER_NAME") runs, expected $IMAGE"
  trap 'output_after_term; fail_and_restore "ValidateService was terminated (hook timeout) before $url answered"' TERM
  wait_healthy "$CONTAINER_NAME" "$url" fail_and_restore
  trap - TERM
  previous_image=$(label "$CONTAINER_NAME" webapp.previous-image)
  remove "$CONTAINER_NAME-previous" "replaced by revision $REVISION, which passed; its image stays for a rollback"
  prune_images "$previous_image"
}

main "$@"
