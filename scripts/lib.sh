# shellcheck shell=bash
# Shared helpers of the CodeDeploy hooks (sourced by scripts/*.sh, never run on its own).
#
# Configuration, later wins:
#   1. <revision>/image.env                 what to run (written by the build; see docs/design.md)
#   2. /etc/webapp/deploy.env               instance settings (WEBAPP_DEPLOY_ENV overrides the path)
#   3. the hook's environment               instance settings given by the caller win over the file
# Instance settings: HOST_PORT (80), HOST_IP (publish on this address only, and check health
# there; default: all addresses, checked on 127.0.0.1), DOCKER_HOST, HEALTH_TIMEOUT (60 s), STOP_TIMEOUT (10 s),
# PULL_TIMEOUT (240 s per attempt), EXTRA_PATH (directories put in front of the fixed PATH, e.g.
# where the aws CLI lives), APP_ENV_FILE (the app's runtime settings on the instance, passed with
# `docker create --env-file`, never baked into the image; default /etc/webapp/app.env, used only
# if it exists; set it empty for none).
#
# With the proxy (proxy.sh, on instances the bootstrap made) a deployment switches instead: the new
# container starts beside the serving one and the proxy moves to it (settings listed there).
# Without it, the swap keeps the service restorable (docs/codedeploy.md): NAME serves; ApplicationStart stops
# it and renames it NAME-previous (image kept), starts NAME from the new image; ValidateService
# removes NAME-previous once NAME is healthy, or restores it and fails the deployment. A new
# container that failed is kept stopped as NAME-failed (for its logs) until the next deployment.

# Hooks run without a login shell: never rely on the caller's PATH.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

HOOK_NAME=$(basename "$0" .sh)
# The revision root (appspec.yml, image.env): the parent of this scripts/ directory.
BUNDLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SETTINGS=(HOST_PORT HOST_IP DOCKER_HOST HEALTH_TIMEOUT STOP_TIMEOUT PULL_TIMEOUT EXTRA_PATH APP_ENV_FILE
  PROXY STATE_DIR BACKEND_IP WATCH_SECONDS WATCH_MAX_5XX DRAIN_TIMEOUT) # the last six: scripts/proxy.sh

log() { printf 'webapp-deploy[%s]: %s\n' "$HOOK_NAME" "$*" >&2; }
die() { DIE_REASON=$*; printf 'webapp-deploy[%s]: error: %s\n' "$HOOK_NAME" "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "need '$1' (not found in PATH=$PATH)"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

load_image_env() {
  local file=$BUNDLE_DIR/image.env key required=(IMAGE REVISION REGISTRY AWS_REGION CONTAINER_NAME CONTAINER_PORT HEALTH_PATH)
  [ -f "$file" ] || die "no image.env beside the scripts (looked for $file)"
  # shellcheck source=/dev/null
  source "$file"
  REGISTRY_LOGIN=${REGISTRY_LOGIN:-ssm}
  case $REGISTRY_LOGIN in
    ecr) ;; # the instance role's ECR token: the build writes no parameter names (ci/imageenv.go)
    ssm) required+=(REGISTRY_USERNAME_PARAM REGISTRY_PASSWORD_PARAM) ;;
    *) die "$file: REGISTRY_LOGIN must be ecr or ssm, got '$REGISTRY_LOGIN'" ;;
  esac
  for key in "${required[@]}"; do
    [ -n "${!key:-}" ] || die "$file: $key is missing or empty"
  done
  [[ $IMAGE == *@sha256:* ]] || die "$file: IMAGE must name the image by digest (repo@sha256:...), got '$IMAGE'"
  is_uint "$CONTAINER_PORT" || die "$file: CONTAINER_PORT must be a number, got '$CONTAINER_PORT'"
  [[ $HEALTH_PATH =~ ^/[^[:space:]]*$ ]] || die "$file: HEALTH_PATH must start with / and hold no spaces, got '$HEALTH_PATH'"
}

load_instance_settings() {
  local file=${WEBAPP_DEPLOY_ENV:-/etc/webapp/deploy.env} key
  local -A from_env=()
  for key in "${SETTINGS[@]}"; do
    [ -n "${!key+set}" ] && from_env[$key]=${!key}
  done
  if [ -f "$file" ]; then
    # shellcheck source=/dev/null
    source "$file"
  fi
  for key in "${!from_env[@]}"; do
    printf -v "$key" '%s' "${from_env[$key]}"
  done
  HOST_PORT=${HOST_PORT:-80}
  HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
  STOP_TIMEOUT=${STOP_TIMEOUT:-10}
  PULL_TIMEOUT=${PULL_TIMEOUT:-240}
  for key in HOST_PORT HEALTH_TIMEOUT STOP_TIMEOUT PULL_TIMEOUT; do
    is_uint "${!key}" || die "$key must be a number of seconds or a port, got '${!key}'"
  done
  if [ -n "${DOCKER_HOST:-}" ]; then export DOCKER_HOST; fi
  [ -z "${HOST_IP:-}" ] || [[ $HOST_IP =~ ^[0-9.]+$ ]] || die "HOST_IP must be an IPv4 address, got '$HOST_IP'"
  HOST_ADDR=${HOST_IP:-127.0.0.1} # where the hooks check health
  if [ -n "${EXTRA_PATH:-}" ]; then PATH=$EXTRA_PATH:$PATH; fi
  # The default app env file is optional; one the instance names explicitly must exist.
  if [ -z "${APP_ENV_FILE+set}" ]; then
    APP_ENV_FILE=/etc/webapp/app.env
    [ -f "$APP_ENV_FILE" ] || APP_ENV_FILE=
  elif [ -n "$APP_ENV_FILE" ] && [ ! -r "$APP_ENV_FILE" ]; then
    die "APP_ENV_FILE=$APP_ENV_FILE does not exist or is not readable: create it, or set APP_ENV_FILE= for none"
  fi
  # docker keeps its login in $HOME/.docker (or $DOCKER_CONFIG); the agent may give no HOME.
  export HOME=${HOME:-/root}
  STATE_DIR=${STATE_DIR:-/var/lib/webapp}
  SD=$STATE_DIR/$CONTAINER_NAME # the proxy's files and the journal of this app
}

# load_config: the settings, then the journal records this hook's start (and, on exit, its end).
load_config() {
  load_image_env
  load_instance_settings
  journal start ""
  trap 'hook_exit $?' EXIT
}

# The journal (SD/journal, one tab-separated line per event: time, deployment, revision, image,
# hook, event, detail): what each deployment did on this instance. scripts/journal.sh prints it
# (installed as STATE_DIR/webapp-journal by every hook; the bootstrap links /usr/local/bin/webapp-journal).
journal() {
  mkdir -p "$SD" 2>/dev/null || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "${DEPLOYMENT_ID:-manual}" \
    "$REVISION" "$IMAGE" "${LIFECYCLE_EVENT:-$HOOK_NAME}" "$1" "$(printf '%s' "$2" | tr '\t\n' '  ')" >>"$SD/journal" 2>/dev/null || true
  if [ "$1" = start ]; then
    install -m 0755 "$(dirname "${BASH_SOURCE[0]}")/journal.sh" "$STATE_DIR/webapp-journal" 2>/dev/null || true
  fi
}

# hook_exit RC: the temporary directories go (logins), and the journal gets the hook's end.
CLEANUP=()
hook_exit() {
  if [ ${#CLEANUP[@]} -gt 0 ]; then rm -rf "${CLEANUP[@]}"; fi
  if [ "$1" -eq 0 ]; then journal end ok; else journal end "failed (exit $1): ${DIE_REASON:-see the hook output}"; fi
}

# Registry credentials come from SSM (names in image.env). The password goes from a variable to
# docker's stdin through a builtin: it is never on a command line or in the log, and the login
# lives in a throwaway DOCKER_CONFIG (ensure_image) removed when the hook exits, so it is not left
# on the instance's disk either.
registry_login() {
  need_cmd aws
  local user password
  # ECR (image.env REGISTRY_LOGIN=ecr): the instance role's 12-hour token, no stored password.
  if [ "${REGISTRY_LOGIN:-ssm}" = ecr ]; then
    password=$(aws ecr get-login-password --region "$AWS_REGION") ||
      die "cannot get an ECR token in $AWS_REGION (instance role needs ecr:GetAuthorizationToken)"
    local out
    out=$(printf '%s' "$password" | docker login --username AWS --password-stdin "$REGISTRY" 2>&1) ||
      die "docker login to $REGISTRY with the instance role's ECR token failed: $out"
    log "logged in to $REGISTRY with the instance role's ECR token"
    return 0
  fi
  user=$(aws ssm get-parameter --region "$AWS_REGION" --name "$REGISTRY_USERNAME_PARAM" \
    --with-decryption --query Parameter.Value --output text) ||
    die "cannot read SSM parameter $REGISTRY_USERNAME_PARAM (instance role needs ssm:GetParameter)"
  password=$(aws ssm get-parameter --region "$AWS_REGION" --name "$REGISTRY_PASSWORD_PARAM" \
    --with-decryption --query Parameter.Value --output text) ||
    die "cannot read SSM parameter $REGISTRY_PASSWORD_PARAM (instance role needs ssm:GetParameter, kms:Decrypt)"
  local out
  out=$(printf '%s' "$password" | docker login --username "$user" --password-stdin "$REGISTRY" 2>&1) ||
    die "docker login to $REGISTRY as $user failed: $out"
  log "logged in to $REGISTRY as $user"
}

# disk_full_hint OUTPUT: the one line that names a full disk, if OUTPUT says so.
disk_full_hint() {
  case $1 in
    *"no space left on device"*)
      printf 'the instance is out of disk space (%s): free some (docker system df; old webapp images are pruned after each validated deployment, keeping the current and the previous)' \
        "$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo 'docker data root')"
      ;;
  esac
}

# ensure_image: pull $IMAGE unless the daemon already has it (by digest: same digest, same bytes).
# Each attempt is bounded by PULL_TIMEOUT, so the hook ends well inside its appspec timeout.
ensure_image() {
  local attempt out hint
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image already present: $IMAGE"
    return 0
  fi
  DOCKER_CONFIG=$(mktemp -d "${TMPDIR:-/tmp}/webapp-docker-config.XXXXXX")
  export DOCKER_CONFIG
  CLEANUP+=("$DOCKER_CONFIG")
  registry_login
  for attempt in 1 2 3; do
    log "pulling $IMAGE (attempt $attempt/3)"
    if out=$(timeout "$PULL_TIMEOUT" docker pull --quiet "$IMAGE" 2>&1); then
      log "pulled $IMAGE"
      return 0
    fi
    hint=$(disk_full_hint "$out")
    [ -z "$hint" ] || die "cannot pull $IMAGE: $hint" # retrying cannot help
    log "pull failed: ${out:-timed out after ${PULL_TIMEOUT}s}"
    if [ "$attempt" -lt 3 ]; then sleep $((attempt * 2)); fi
  done
  die "could not pull $IMAGE after 3 attempts"
}

container_exists() { docker container inspect "$1" >/dev/null 2>&1; }
# inspect NAME FORMAT: one field of a container ("" if there is no such container)
inspect() { docker container inspect --format "$2" "$1" 2>/dev/null || true; }
label() { inspect "$1" "{{index .Config.Labels \"$2\"}}"; }
describe() { printf '%s (revision %s, %s)' "$1" "$(label "$1" webapp.revision)" "$(inspect "$1" '{{.Config.Image}}')"; }

# remove NAME WHY: remove a container if it exists.
remove() {
  container_exists "$1" || return 0
  docker rm --force "$1" >/dev/null
  log "removed $1 ($2)"
}

# stop_container NAME: stop (SIGTERM, then SIGKILL after STOP_TIMEOUT) and remove; none = success.
stop_container() {
  local name=$1
  if ! container_exists "$name"; then
    log "no container $name: nothing to stop"
    return 0
  fi
  docker stop --time "$STOP_TIMEOUT" "$name" >/dev/null || true
  docker rm --force "$name" >/dev/null
  log "stopped and removed $name"
}

# ours NAME: NAME is this deployment's container, running $IMAGE (a re-run of the hook).
ours() {
  [ "$(inspect "$1" '{{.Config.Image}} {{.State.Status}}')" = "$IMAGE running" ] &&
    [ "$(label "$1" webapp.deployment-id)" = "${DEPLOYMENT_ID:-manual}" ]
}

# create_next NAME PREVIOUS_IMAGE [PUBLISH]: the new container, created (not started) while the old
# one still serves; published on HOST_PORT unless PUBLISH (ip:port:container-port) says where.
create_next() {
  local next=$1 previous_image=$2 publish=${3:-${HOST_IP:+$HOST_IP:}$HOST_PORT:$CONTAINER_PORT} out hint args=()
  # json-file logs grow without bound: cap them (other drivers have their own retention)
  if [ "$(docker info --format '{{.LoggingDriver}}' 2>/dev/null)" = json-file ]; then
    args+=(--log-opt max-size=10m --log-opt max-file=3)
  fi
  if [ -n "$APP_ENV_FILE" ]; then
    args+=(--env-file "$APP_ENV_FILE")
    log "app settings from $APP_ENV_FILE (given to the container, not in the image)"
  fi
  out=$(docker create --name "$next" --restart unless-stopped \
    --publish "$publish" "${args[@]}" \
    --label "webapp.deployment-id=${DEPLOYMENT_ID:-manual}" \
    --label "webapp.revision=$REVISION" \
    --label "webapp.image=$IMAGE" \
    --label "webapp.health-path=$HEALTH_PATH" \
    --label "webapp.previous-image=$previous_image" \
    --label "webapp.settings=$(settings_digest)" \
    "$IMAGE" 2>&1) || {
    hint=$(disk_full_hint "$out")
    die "docker create of $IMAGE failed: ${hint:-$out}"
  }
}

# start_container: the swap. The serving container is stopped and renamed NAME-previous, never
# removed here: ValidateService removes it once the new one is healthy, or restores it.
start_container() {
  local name=$CONTAINER_NAME prev=$CONTAINER_NAME-previous next=$CONTAINER_NAME-next out
  remove "$next" "left by an interrupted ApplicationStart"
  remove "$name-failed" "the container of the last failed deployment, kept until now for its logs"
  if ours "$name"; then
    log "$(describe "$name") already runs for deployment ${DEPLOYMENT_ID:-manual}: nothing to swap"
    return 0
  fi
  if container_exists "$prev" && container_exists "$name"; then
    # the last deployment stopped before ValidateService decided: NAME was never validated
    remove "$name" "never validated; $(describe "$prev") stays the one to restore"
  fi
  # the image to keep for a rollback once this one is validated (prune_images)
  create_next "$next" "$(inspect "$name" '{{.Config.Image}}')$(inspect "$prev" '{{.Config.Image}}')"
  trap 'on_term_restore' TERM
  trap '' PIPE # a TERM's "Terminated" notice on the closed pipe must not kill the restore (validate_service.sh)
  if container_exists "$name"; then
    docker stop --time "$STOP_TIMEOUT" "$name" >/dev/null || true
    docker rename "$name" "$prev"
  fi
  if ! out=$(docker start "$next" 2>&1); then
    docker rename "$next" "$name-failed"
    restore_previous "the new container did not start"
    die "docker start of $IMAGE failed: ${out} $(docker logs --tail 20 "$name-failed" 2>&1)"
  fi
  docker rename "$next" "$name"
  trap - TERM PIPE
  log "started $name ($IMAGE, revision $REVISION) on host port $HOST_PORT; $prev kept until ValidateService passes"
}

# output_after_term: the agent closes the hook's stdout/stderr as soon as it sends the timeout's
# SIGTERM (measured): a write to them would kill the hook with SIGPIPE in the middle of a
# restore. From here on the hook logs to <deployment>/logs/webapp-after-timeout.log, beside the
# agent's scripts.log.
output_after_term() {
  trap '' PIPE
  exec >>"$BUNDLE_DIR/../logs/webapp-after-timeout.log" 2>&1 || exec >/dev/null 2>&1
  log "SIGTERM from the agent (hook timeout): the agent no longer reads this hook's output"
}

# on_term_restore: the agent's timeout sends SIGTERM to the hook's process group (never SIGKILL):
# put the previous container back before exiting, so a timeout cannot leave the service down.
on_term_restore() {
  trap - TERM
  output_after_term
  log "restoring the previous container"
  if container_exists "$CONTAINER_NAME-next"; then docker rm --force "$CONTAINER_NAME-next" >/dev/null 2>&1 || true; fi
  if container_exists "$CONTAINER_NAME" && [ "$(inspect "$CONTAINER_NAME" '{{.Config.Image}}')" = "$IMAGE" ]; then
    docker stop --time "$STOP_TIMEOUT" "$CONTAINER_NAME" >/dev/null 2>&1 || true
    remove "$CONTAINER_NAME-failed" "replaced"
    docker rename "$CONTAINER_NAME" "$CONTAINER_NAME-failed"
  fi
  restore_previous "the hook was terminated"
  exit 143
}

# restore_previous WHY: put NAME-previous back as NAME, start it and wait (HEALTH_TIMEOUT at
# most) until it answers its own health path. Says what it did in one line; the caller still
# fails the deployment.
restore_previous() {
  local name=$CONTAINER_NAME prev=$CONTAINER_NAME-previous path url deadline
  if ! container_exists "$prev"; then
    log "nothing to restore ($1): no previous container (first deployment on this instance)"
    return 0
  fi
  docker rename "$prev" "$name"
  if ! docker start "$name" >/dev/null 2>&1; then
    log "rollback FAILED: $(describe "$name") did not start again ($1): $(docker logs --tail 5 "$name" 2>&1 | tr '\n' ' ')"
    return 0
  fi
  # a container the hooks did not create has no label: it ran the same app, so this bundle's path
  path=$(label "$name" webapp.health-path)
  url=http://$HOST_ADDR:$HOST_PORT${path:-$HEALTH_PATH}
  deadline=$((SECONDS + HEALTH_TIMEOUT))
  until curl --fail --silent --output /dev/null --max-time 2 "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "rolled back: $(describe "$name") started again but $url does not answer after ${HEALTH_TIMEOUT}s ($1); this deployment fails"
      return 0
    fi
    sleep 0.2
  done
  log "rolled back: $(describe "$name") serves again on host port $HOST_PORT ($1); this deployment fails"
}

# healthy URL: one GET; the answer (or curl's error) in $body.
healthy() { body=$(curl --fail --silent --show-error --max-time 2 "$1" 2>&1); }

# wait_healthy NAME URL ONFAIL: until URL answers 2xx, HEALTH_TIMEOUT at most, while container NAME
# runs; otherwise ONFAIL WHY (which does not return). Used by both ways of validating (the restart
# swap, validate_service.sh; the proxy switch, proxy.sh).
wait_healthy() {
  local name=$1 url=$2 onfail=$3 deadline=$((SECONDS + HEALTH_TIMEOUT)) state
  while :; do
    state=$(inspect "$name" '{{.State.Status}}')
    case $state in running | restarting) ;; *) "$onfail" "container $name is ${state:-missing}" ;; esac
    if healthy "$url"; then
      log "healthy: $url answered: $body"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || "$onfail" "$url not healthy after ${HEALTH_TIMEOUT}s; last answer: $body"
    sleep 0.5
  done
}

# prune_images KEEP: remove this app's images (pulled by digest: repo@sha256) but the current
# ($IMAGE) and the previous one (KEEP), which a rollback needs. Docker refuses the ones a
# container still uses; other repositories' images are never touched.
prune_images() {
  local keep=$1 repo=${IMAGE%@*} id refs ref
  for id in $(docker images --no-trunc --quiet "$repo" | sort -u); do
    refs=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$id" 2>/dev/null | grep "^$repo@") || continue
    if grep -qxF -e "$IMAGE" -e "${keep:-$IMAGE}" <<<"$refs"; then continue; fi
    for ref in $refs; do
      if docker image rm "$ref" >/dev/null 2>&1; then log "pruned old image $ref (kept the current and the previous)"; fi
    done
  done
  return 0
}

# shellcheck source-path=SCRIPTDIR source=proxy.sh
source "$(dirname "${BASH_SOURCE[0]}")/proxy.sh" # issue 19: the switch through a proxy on the instance
# shellcheck source-path=SCRIPTDIR source=verify_image.sh
source "$(dirname "${BASH_SOURCE[0]}")/verify_image.sh" # issue 13: verify_image (signature, provenance)
