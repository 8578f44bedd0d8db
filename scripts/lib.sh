# shellcheck shell=bash
# Shared helpers of the CodeDeploy hooks (sourced by scripts/*.sh, never run on its own).
#
# Configuration, later wins:
#   1. <revision>/image.env                 what to run (written by the build; see docs/design.md)
#   2. /etc/webapp/deploy.env               instance settings (WEBAPP_DEPLOY_ENV overrides the path)
#   3. the hook's environment               instance settings given by the caller win over the file
# Instance settings: HOST_PORT (80), DOCKER_HOST, HEALTH_TIMEOUT (60 s), STOP_TIMEOUT (10 s),
# EXTRA_PATH (directories put in front of the fixed PATH, e.g. where the aws CLI lives).

# Hooks run without a login shell: never rely on the caller's PATH.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

HOOK_NAME=$(basename "$0" .sh)
# The revision root (appspec.yml, image.env): the parent of this scripts/ directory.
BUNDLE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SETTINGS=(HOST_PORT DOCKER_HOST HEALTH_TIMEOUT STOP_TIMEOUT EXTRA_PATH)

log() { printf 'webapp-deploy[%s]: %s\n' "$HOOK_NAME" "$*" >&2; }
die() { printf 'webapp-deploy[%s]: error: %s\n' "$HOOK_NAME" "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "need '$1' (not found in PATH=$PATH)"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

load_image_env() {
  local file=$BUNDLE_DIR/image.env key
  [ -f "$file" ] || die "no image.env beside the scripts (looked for $file)"
  # shellcheck source=/dev/null
  source "$file"
  for key in IMAGE REVISION REGISTRY REGISTRY_USERNAME_PARAM REGISTRY_PASSWORD_PARAM AWS_REGION \
    CONTAINER_NAME CONTAINER_PORT; do
    [ -n "${!key:-}" ] || die "$file: $key is missing or empty"
  done
  [[ $IMAGE == *@sha256:* ]] || die "$file: IMAGE must name the image by digest (repo@sha256:...), got '$IMAGE'"
  is_uint "$CONTAINER_PORT" || die "$file: CONTAINER_PORT must be a number, got '$CONTAINER_PORT'"
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
  for key in HOST_PORT HEALTH_TIMEOUT STOP_TIMEOUT; do
    is_uint "${!key}" || die "$key must be a number of seconds or a port, got '${!key}'"
  done
  if [ -n "${DOCKER_HOST:-}" ]; then export DOCKER_HOST; fi
  if [ -n "${EXTRA_PATH:-}" ]; then PATH=$EXTRA_PATH:$PATH; fi
  # docker keeps its login in $HOME/.docker (or $DOCKER_CONFIG); the agent may give no HOME.
  export HOME=${HOME:-/root}
}

load_config() {
  load_image_env
  load_instance_settings
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

# ensure_image: pull $IMAGE unless the daemon already has it (by digest: same digest, same bytes).
ensure_image() {
  local attempt
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image already present: $IMAGE"
    return 0
  fi
  DOCKER_CONFIG=$(mktemp -d "${TMPDIR:-/tmp}/webapp-docker-config.XXXXXX")
  export DOCKER_CONFIG
  trap 'rm -rf "$DOCKER_CONFIG"' EXIT
  registry_login
  for attempt in 1 2 3; do
    log "pulling $IMAGE (attempt $attempt/3)"
    if docker pull --quiet "$IMAGE" >/dev/null; then
      log "pulled $IMAGE"
      return 0
    fi
    if [ "$attempt" -lt 3 ]; then sleep $((attempt * 2)); fi
  done
  die "could not pull $IMAGE after 3 attempts"
}

container_exists() { docker container inspect "$1" >/dev/null 2>&1; }

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

# start_container: replace the running container with one of $IMAGE, keeping the gap short:
# the new container is created (not started) while the old one still serves, then the old one
# is stopped and the new one started at once. The host port can only be bound by one of them.
start_container() {
  local next=$CONTAINER_NAME-next
  container_exists "$next" && docker rm --force "$next" >/dev/null
  docker create --name "$next" --restart unless-stopped \
    --publish "$HOST_PORT:$CONTAINER_PORT" \
    --label "webapp.deployment-id=${DEPLOYMENT_ID:-manual}" \
    --label "webapp.revision=$REVISION" \
    --label "webapp.image=$IMAGE" \
    "$IMAGE" >/dev/null || die "docker create of $IMAGE failed"
  stop_container "$CONTAINER_NAME"
  docker start "$next" >/dev/null || die "docker start of $next ($IMAGE) failed: $(docker logs --tail 20 "$next" 2>&1)"
  docker rename "$next" "$CONTAINER_NAME"
  log "started $CONTAINER_NAME ($IMAGE, revision $REVISION) on host port $HOST_PORT"
}

# shellcheck source-path=SCRIPTDIR source=verify_image.sh
source "$(dirname "${BASH_SOURCE[0]}")/verify_image.sh" # issue 13: verify_image (signature, provenance)
