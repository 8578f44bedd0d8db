#!/usr/bin/env bash
# infra/instance/bootstrap.sh: makes an EC2 instance ready for the webapp CodeDeploy hooks
# (scripts/): Docker, the CodeDeploy agent, the AWS CLI, cosign (pinned version and SHA-256),
# HAProxy + socat with the webapp-proxy@ unit (the switch: scripts/proxy.sh) and
# /etc/webapp/deploy.env; then restarts the agent once the instance profile is there (the agent
# reads its credentials when it starts). Amazon Linux 2023 (dnf) and Ubuntu/Debian (apt), x86_64
# and arm64. Runs as root, as cloud-init user data (the template's launch template embeds this
# file verbatim after a header of settings) or by hand on an instance you bring.
#
# Idempotent: a second run installs, downloads and rewrites nothing (it says "already" for each).
# cosign is downloaded and checked FIRST: a download whose SHA-256 is not the pinned one stops the
# script before anything is installed.
#
# Settings (environment; the template's header sets the first one):
#   WEBAPP_DEPLOY_ENV   the lines of /etc/webapp/deploy.env (HOST_PORT, SIGNING_KEY,
#                       SOURCE_REPOSITORY, ...: scripts/lib.sh lists them)
#   PROFILE_WAIT        seconds to wait for the instance profile's credentials (default 600)
# Downloads, each overridable so a test can hand local copies (nothing else changes):
#   COSIGN_URL, COSIGN_SHA256   default: the GitHub release of COSIGN_VERSION for this machine
#   CODEDEPLOY_INSTALLER_URL    default: AWS's installer for this region
#   AWSCLI_URL                  default: AWS's CLI v2 installer (only where no package has it)
#   IMDS_URL                    default: http://169.254.169.254 (region, instance profile)
set -euo pipefail

COSIGN_VERSION=v2.6.5
# The release's own cosign_checksums.txt (sigstore/cosign v2.6.5).
COSIGN_SHA256_AMD64=c3b4f5410e608af03a5eb0aaac84a4313d8da131248e08ff1759ac70c79d1644
COSIGN_SHA256_ARM64=426193b4c5da4d4d643e822f48fe0cc8a476ca1782a272704831f5a0cef716d7
IMDS_URL=${IMDS_URL:-http://169.254.169.254}
PROFILE_WAIT=${PROFILE_WAIT:-600}
AGENT_DIR=/opt/codedeploy-agent
COSIGN=/usr/local/bin/cosign
PROXY_UNIT=/etc/systemd/system/webapp-proxy@.service
COSIGN_RELEASES=https://github.com/sigstore/cosign/releases/download

log() { printf 'webapp-bootstrap: %s\n' "$*" >&2; }
die() { printf 'webapp-bootstrap: error: %s\n' "$*" >&2; exit 1; }
fetch() { curl -fsSL --retry 3 --output "$2" "$1" || die "cannot download $1"; }
has_systemd() { [ -d /run/systemd/system ]; }
# apt_get ARGS: apt-get that waits for the package lock: on Ubuntu's first boot apt-daily and
# unattended-upgrades run beside cloud-init, and a plain apt-get fails at once on their lock.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# imds PATH: one IMDSv2 read (a token per call: the script runs once, rarely).
imds() {
  local token
  token=$(curl --fail --silent --max-time 2 -X PUT "$IMDS_URL/latest/api/token" \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') || return 1
  curl --fail --silent --max-time 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS_URL/latest/$1"
}

detect() {
  [ "$(id -u)" -eq 0 ] || die "run as root (cloud-init user data does)"
  command -v curl >/dev/null ||
    die "curl is missing (Amazon Linux 2023 and Ubuntu images have it): install it first"
  if command -v dnf >/dev/null; then PKG=dnf
  elif command -v apt-get >/dev/null; then PKG=apt
  else die "no dnf or apt-get: this script knows Amazon Linux 2023 and Ubuntu/Debian"
  fi
  case $(uname -m) in
    x86_64) ARCH=amd64 SUM=$COSIGN_SHA256_AMD64 ;;
    aarch64) ARCH=arm64 SUM=$COSIGN_SHA256_ARM64 ;;
    *) die "unsupported machine $(uname -m) (x86_64 or aarch64)" ;;
  esac
  REGION=$(imds meta-data/placement/region) ||
    die "cannot read the region from the instance metadata at $IMDS_URL"
  log "$PKG system, $ARCH, region $REGION"
}

# fetch_cosign: the pinned cosign into a temporary file, checked; nothing is installed before.
fetch_cosign() {
  local want=${COSIGN_SHA256:-$SUM} got
  COSIGN_TMP=
  if [ -x "$COSIGN" ] && [ "$(sha256sum "$COSIGN" | cut -d' ' -f1)" = "$want" ]; then
    log "cosign $COSIGN_VERSION already installed"
    return 0
  fi
  COSIGN_TMP=$(mktemp)
  trap 'rm -f "$COSIGN_TMP"' EXIT
  fetch "${COSIGN_URL:-$COSIGN_RELEASES/$COSIGN_VERSION/cosign-linux-$ARCH}" "$COSIGN_TMP"
  got=$(sha256sum "$COSIGN_TMP" | cut -d' ' -f1)
  [ "$got" = "$want" ] ||
    die "cosign download has SHA-256 $got, not the pinned $want: nothing installed"
}

# packages NAME...: install what is missing (no index refresh when nothing is).
packages() {
  local missing=() p
  for p in "$@"; do
    case $PKG in
      dnf) rpm -q --whatprovides "$p" >/dev/null 2>&1 || missing+=("$p") ;; # AL2023's ruby is ruby3.2
      apt) [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
        missing+=("$p") ;;
    esac
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "packages already installed: $*"
    return 0
  fi
  log "installing packages: ${missing[*]}"
  case $PKG in
    dnf) dnf install -y -q "${missing[@]}" ;;
    apt) export DEBIAN_FRONTEND=noninteractive
      apt_get update -qq && apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ;;
  esac
}

# enable NAME: start at boot and now (nothing to do without systemd: a container or a chroot).
enable() {
  if has_systemd; then systemctl enable --now "$1"; else log "no systemd: $1 not started here"; fi
}

# apt_has PKG: the apt sources have it (no grep -q: it would close the pipe early, and pipefail
# would count apt-cache's SIGPIPE).
apt_has() { apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; }

# install_packages: Docker, Ruby (the CodeDeploy agent is Ruby) and the AWS CLI where the
# distribution packages it (AL2023 ships it; Ubuntu 24.04 has none: install_aws_cli).
install_packages() {
  local want
  case $PKG in
    dnf) want=(docker ruby)
      command -v aws >/dev/null || want+=(awscli-2) ;;
    apt) want=(docker.io ruby)
      [ -n "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null)" ] || apt_get update -qq
      # Debian ships the docker CLI apart (docker-cli, a Recommends), Ubuntu inside docker.io.
      if apt_has docker-cli; then want+=(docker-cli); fi
      if ! command -v aws >/dev/null && apt_has awscli; then want+=(awscli); fi ;;
  esac
  packages "${want[@]}"
  enable docker
}

install_aws_cli() {
  if command -v aws >/dev/null; then
    log "aws CLI: $(command -v aws)"
    return 0
  fi
  packages unzip
  local dir; dir=$(mktemp -d)
  fetch "${AWSCLI_URL:-https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip}" "$dir/awscli.zip"
  unzip -q "$dir/awscli.zip" -d "$dir" && "$dir/aws/install" --update >/dev/null
  rm -rf "$dir"
  log "installed the AWS CLI with AWS's installer"
}

install_cosign() {
  [ -n "$COSIGN_TMP" ] || return 0
  install -m 0755 "$COSIGN_TMP" "$COSIGN"
  log "installed cosign $COSIGN_VERSION at $COSIGN"
}

# install_proxy: the reverse proxy that owns the host port, so a deployment switches instead of
# restarting (scripts/proxy.sh says why HAProxy): the distribution's haproxy and socat (the client
# of its runtime API), and a systemd unit per app, webapp-proxy@NAME, which the hooks enable on
# their first switch; it runs the config they write after each switch (the last good version), so
# it comes back with the instance. The distribution's own haproxy service is disabled (its default
# config serves nothing). webapp-journal (scripts/journal.sh, installed by every hook) is linked
# into /usr/local/bin.
install_proxy() {
  packages haproxy socat
  if has_systemd && systemctl is-enabled --quiet haproxy.service 2>/dev/null; then
    systemctl disable --now haproxy.service
  fi
  local want
  want=$(cat <<'UNIT'
[Unit]
Description=webapp reverse proxy of %i: owns the host port, switched by the CodeDeploy hooks
After=network-online.target docker.service
ConditionPathExists=/var/lib/webapp/%i/proxy.cfg

[Service]
Type=notify
ExecStart=/usr/sbin/haproxy -Ws -f /var/lib/webapp/%i/proxy.cfg -p /var/lib/webapp/%i/proxy.pid
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
)
  mkdir -p /var/lib/webapp && chmod 0750 /var/lib/webapp
  local journal=/usr/local/bin/webapp-journal
  [ -L "$journal" ] || ln -sfn /var/lib/webapp/webapp-journal "$journal"
  if [ -f "$PROXY_UNIT" ] && [ "$(cat "$PROXY_UNIT")" = "$want" ]; then
    log "webapp-proxy@ unit already installed"
    return 0
  fi
  mkdir -p "$(dirname "$PROXY_UNIT")"
  printf '%s\n' "$want" > "$PROXY_UNIT"
  if has_systemd; then systemctl daemon-reload; fi
  log "installed the webapp-proxy@ unit ($PROXY_UNIT)"
}

# install_agent: AWS's installer (Ruby) picks the agent package for this system. AGENT_INSTALLED
# tells the end whether the agent must be (re)started.
install_agent() {
  AGENT_INSTALLED=
  if [ -d "$AGENT_DIR/bin" ]; then
    log "CodeDeploy agent already installed ($AGENT_DIR)"
    return 0
  fi
  local dir; dir=$(mktemp -d)
  local url=https://aws-codedeploy-$REGION.s3.$REGION.amazonaws.com/latest/install
  fetch "${CODEDEPLOY_INSTALLER_URL:-$url}" "$dir/install"
  chmod +x "$dir/install"
  (cd "$dir" && ./install auto) || die "the CodeDeploy agent's installer failed"
  rm -rf "$dir"
  [ -d "$AGENT_DIR/bin" ] || die "the CodeDeploy agent's installer left no $AGENT_DIR/bin"
  AGENT_INSTALLED=1
  log "installed the CodeDeploy agent ($AGENT_DIR)"
}

# write_deploy_env: the instance settings the hooks read; rewritten only when they changed.
write_deploy_env() {
  local want
  want=$(printf '%s\n' "${WEBAPP_DEPLOY_ENV:-}" | grep -v '^[[:space:]]*$' || true)
  if [ -f /etc/webapp/deploy.env ] && [ "$(cat /etc/webapp/deploy.env)" = "$want" ]; then
    log "/etc/webapp/deploy.env already up to date"
    return 0
  fi
  mkdir -p /etc/webapp
  printf '%s\n' "$want" > /etc/webapp/.deploy.env.new
  chmod 0644 /etc/webapp/.deploy.env.new && mv /etc/webapp/.deploy.env.new /etc/webapp/deploy.env
  log "wrote /etc/webapp/deploy.env ($(cut -d= -f1 /etc/webapp/deploy.env | paste -sd' ' -))"
}

# start_agent: once the instance profile's credentials are there (the agent reads them at
# start: started before the profile is attached, it never polls for deployments).
start_agent() {
  local deadline=$((SECONDS + PROFILE_WAIT)) role
  until role=$(imds meta-data/iam/security-credentials/) && [ -n "$role" ]; do
    [ "$SECONDS" -lt "$deadline" ] ||
      die "no instance profile after ${PROFILE_WAIT}s: attach the stack's InstanceProfileName," \
        "then: systemctl restart codedeploy-agent"
    sleep 5
  done
  log "instance profile role: $role"
  if ! has_systemd; then
    log "no systemd: codedeploy-agent not started here"
  elif [ -n "$AGENT_INSTALLED" ] || ! systemctl is-active --quiet codedeploy-agent; then
    systemctl enable codedeploy-agent && systemctl restart codedeploy-agent
    log "codedeploy-agent (re)started with the instance profile's credentials"
  else
    log "codedeploy-agent already running"
  fi
}

main() {
  detect
  fetch_cosign
  install_packages
  install_aws_cli
  install_cosign
  install_proxy
  install_agent
  write_deploy_env
  start_agent
  log "done"
}

main "$@"
