#!/usr/bin/env bash
# The local dev environment: everything the build and its tests need, on one machine, as root.
#
#   dev/env.sh up       install, build (cached), start; writes the env file and prints its path
#   dev/env.sh down     stop what `up` started and remove what it created (caches stay)
#   dev/env.sh status   what is running
#   dev/env.sh env      print the env file (for: eval "$(dev/env.sh env)")
#   dev/env.sh stage NAME  build the base images as they are in this tree and publish them on the
#                       running mirror under stage/NAME/ only (127.0.0.1:5000/stage/NAME/library/
#                       python:TAG): to try a base image change while others use the mirror
#
# What runs (all on 127.0.0.1):
#   - a Dagger engine $DAGGER_VERSION built from the Go module and run natively (no Docker needed)
#   - registry :5000  the engine's mirror of docker.io and public.ecr.aws, holding python:3.13-slim
#                     and python:3.11-slim (also as public.ecr.aws/docker/library/python:TAG):
#                     stand-ins for the official images built from Debian ($PYTHON_IMAGES)
#                     and docker/dockerfile:1 (BuildKit's Dockerfile frontend, for `# syntax=` lines)
#   - registry :5001  the push target, htpasswd auth (stands for ECR / a private registry)
#   - moto_server :4566  the SSM endpoint, seeded with the push registry's username and password;
#                        and ECR's (GetAuthorizationToken: internal/ecrauth's tests)
#   - dockerd (unix socket under $RUN)  the "EC2 instance" the CodeDeploy hook scripts drive
# Why two registries: base images are public in real life (Docker Hub), and the engine's mirror
# config has no place for credentials; pushes are private, and go through WithRegistryAuth.
#
# Slow things are cached under $WEBAPP_DEV_CACHE (default /var/cache/webapp-dev), keyed by version:
# the engine binaries, the Debian rootfs, the lint tools' virtualenv, the mirror's storage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$ROOT/dev/versions.env"

CACHE=${WEBAPP_DEV_CACHE:-/var/cache/webapp-dev}
RUN=${WEBAPP_DEV_RUN:-/run/webapp-dev}
ENGINE=$CACHE/dagger-$DAGGER_VERSION-r$ENGINE_REV
TOOLS=$CACHE/tools-$(sha256sum "$ROOT/dev/requirements-tools.txt" | cut -c1-12)
HOST_CAS=(/usr/local/share/ca-certificates/*.crt) # this machine's extra CAs (a TLS proxy's), if any
# crane's version is go-containerregistry's in go.mod (crane is a `tool` of this module)
CRANE_VERSION=$(sed -n 's#^\tgithub.com/google/go-containerregistry \(v[^ ]*\).*#\1#p' "$ROOT/go.mod")
CRANE=$CACHE/bin/crane-$CRANE_VERSION
FRONTEND=$CACHE/bin/dockerfile-frontend-$BUILDKIT_VERSION
CA_KEY=ca$(cat "${HOST_CAS[@]}" 2>/dev/null | sha256sum | cut -c1-8)
# rootfs_tar SUITE [ARCH]: amd64's keeps the name it had before arm64 was added (its cache, and so
# the amd64 image's digest, stay as they were)
rootfs_tar() {
  local arch=-${2:-amd64}
  if [ "$arch" = -amd64 ]; then arch=; fi
  echo "$CACHE/rootfs-$1$arch-python-r$ROOTFS_REV-$CA_KEY.tar"
}
NATIVE_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
MIRROR_PORT=5000
REGISTRY_PORT=5001
MOTO_PORT=4566
REGISTRY_USER=ci-pusher
SSM_USER_PARAM=/webapp/registry/username
SSM_PASSWORD_PARAM=/webapp/registry/password
ENV_FILE=$RUN/env

log() { printf 'dev/env: %s\n' "$*" >&2; }
die() { printf 'dev/env: error: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts an engine): sudo $0 $*"; }

# What the build needs (the engine's runtime, the registries, mmdebstrap for the base image), and
# what only the tests need besides (dockerd as the instance, the linters, the hook tests' tools).
# qemu-user-static, arch-test (mmdebstrap asks it whether a foreign architecture runs): the base
# images' foreign architectures (PYTHON_ARCHES) are built and run under
# emulation (install_qemu)
APT_PACKAGES=(runc iptables dnsmasq-base containernetworking-plugins ca-certificates git pigz xz-utils
  mmdebstrap docker-registry apache2-utils curl iproute2 qemu-user-static arch-test)
APT_PACKAGES_TESTS=(docker.io shellcheck yamllint zip unzip tmux socat) # socat: the instance proxy's runtime API client (scripts/proxy.sh)

# FOR: what `up` prepares. all (the default: `make test`, CI) or build (`make build`: what the
# build needs, nothing the tests alone need: no dockerd, linters, CodeDeploy agent, cosign).
FOR=${WEBAPP_DEV_FOR:-all}

install_packages() {
  local missing=() p want=("${APT_PACKAGES[@]}")
  [ "$FOR" = build ] || want+=("${APT_PACKAGES_TESTS[@]}")
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # docker.io's package starts its own daemon (and docker-registry its own) where systemd runs:
  # we run our own instances on our own sockets and ports instead.
  systemctl disable --now docker.service docker.socket docker-registry.service >/dev/null 2>&1 || true
}

# install_qemu: the kernel runs a foreign architecture's binaries (PYTHON_ARCHES other than this
# machine's) through qemu-user-static, registered in binfmt_misc from the package's own binfmt.d
# file (where systemd-binfmt runs, the package registered it already; here PID 1 is not systemd).
# The F (fix-binary) flag is required: the kernel opens the interpreter when it is registered, so
# it also runs arm64 programs inside containers and chroots, which have no /usr/libexec/qemu-binfmt
# of their own (mmdebstrap's chroot, the engine's and dockerd's containers). An entry without it
# (e.g. qemu-user-binfmt's, a dynamically linked qemu) is replaced.
qemu_arch() { case $1 in arm64) echo aarch64 ;; amd64) echo x86_64 ;; *) echo "$1" ;; esac; }
install_qemu() {
  local arch q entry conf
  local bm=/proc/sys/fs/binfmt_misc
  [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" || die "cannot mount binfmt_misc on $bm (a container without it cannot emulate: PYTHON_ARCHES=$NATIVE_ARCH only)"
  for arch in $PYTHON_ARCHES; do
    [ "$arch" = "$NATIVE_ARCH" ] && continue
    q=$(qemu_arch "$arch") entry=$bm/qemu-$q conf=/usr/lib/binfmt.d/qemu-$q.conf
    if [ -e "$entry" ] && grep -q '^enabled' "$entry" && grep -q '^flags: .*F' "$entry"; then continue; fi
    [ -s "$conf" ] || die "no $conf: is qemu-user-static installed (apt-get install qemu-user-static)?"
    [ -e "$entry" ] && echo -1 > "$entry"
    log "registering $arch emulation (qemu-$q, binfmt_misc with the F flag)"
    grep -v '^#' "$conf" > "$bm/register" || die "registering $conf in $bm/register failed"
    grep -q '^flags: .*F' "$entry" || die "$entry has no F (fix-binary) flag: containers could not run $arch programs"
  done
}

# Build the dagger CLI, engine, init and dnsname from the Go module (the proxy serves it; the
# engine image registry is not reachable). Keyed by version; ~3 min cold on 2 cores.
build_engine() {
  [ -x "$ENGINE/bin/dagger-engine" ] && [ -x "$ENGINE/bin/dagger" ] && return 0
  local src work
  export GONOSUMDB='github.com/dagger/*,dagger.io/*' GOFLAGS=-mod=mod
  src=$(cd /tmp && go mod download -json "github.com/dagger/dagger@$DAGGER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || die "go mod download github.com/dagger/dagger@$DAGGER_VERSION failed"
  work=$(mktemp -d "$CACHE/.engine-src.XXXXXX")
  cp -r "$src/." "$work/src"
  chmod -R u+w "$work/src"
  mkdir -p "$work/distconsts"
  sed "s#@PREFIX@#$ENGINE#g" "$ROOT/dev/engine/distconsts.go.tmpl" > "$work/distconsts/distconsts.go"
  printf 'module github.com/dagger/dagger/engine/distconsts\n\ngo 1.23\n' > "$work/distconsts/go.mod"
  # The engine installs the host's extra CA certificates into every container it runs
  # (update-ca-certificates before and after each exec: ~1 s per exec here). The stand-in base
  # image already trusts them (build_rootfs), so the engine gets a CA directory of its own, empty.
  local cacerts=$work/src/engine/buildkit/cacerts/cacerts.go
  sed -i "s#\"/usr/local/share/ca-certificates\"#\"$ENGINE/ca-certificates\"#" "$cacerts"
  grep -q "\"$ENGINE/ca-certificates\"" "$cacerts" || die "could not patch the engine's CA directory in $cacerts"
  (
    cd "$work/src"
    go mod edit -dropreplace dagger.io/dagger -require "dagger.io/dagger@$DAGGER_VERSION" \
      -replace "github.com/dagger/dagger/engine/distconsts=$work/distconsts"
    # No `go mod tidy`: -mod=mod resolves what these four packages import (the same versions);
    # tidy would also fetch every test's and platform's modules. One `go build` of the four:
    # their links run side by side. CGO_ENABLED=0 and -trimpath, as syft's build
    # (dev/install-gotool.sh): the packages they share are compiled once.
    local ld="-s -w -X github.com/dagger/dagger/engine.Version=$DAGGER_VERSION -X github.com/dagger/dagger/engine.Tag=$DAGGER_VERSION"
    mkdir -p "$work/bin"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$work/bin/" ./cmd/dagger ./cmd/engine ./cmd/init ./cmd/dnsname
  ) || die "building the engine failed (see above); sources kept in $work"
  mkdir -p "$ENGINE/bin" "$ENGINE/cni/bin" "$ENGINE/run" "$ENGINE/state" "$ENGINE/share/content"
  mv "$work/bin/dnsname" "$ENGINE/cni/bin/dnsname"
  mv "$work/bin/engine" "$ENGINE/bin/dagger-engine"
  mv "$work/bin/init" "$ENGINE/bin/dagger-init"
  mv "$work/bin/dagger" "$ENGINE/bin/dagger"
  rm -rf "$work"
}

link_runtime() {
  mkdir -p "$ENGINE/bin" "$ENGINE/cni/bin" "$ENGINE/run" "$ENGINE/state" "$ENGINE/share/content" "$ENGINE/ca-certificates"
  ln -sf "$(command -v runc)" "$ENGINE/bin/runc"
  local p
  for p in bridge firewall host-local loopback; do ln -sf "/usr/lib/cni/$p" "$ENGINE/cni/bin/$p"; done
}

# Virtualenvs with the pinned Python tools (moto_server, aws, linters), each keyed by its
# requirements file's hash; checkov's is linked into the main one so one PATH entry serves.
venv_key() { sha256sum "$ROOT/dev/$1" | cut -c1-12; }
install_venv() { # install_venv DIR REQUIREMENTS
  [ -f "$1/.complete" ] && return 0
  log "installing $2 into $1 (once; ~1 min)"
  rm -rf "$1"
  python3 -m venv "$1"
  "$1/bin/pip" install -q -r "$ROOT/dev/$2" || die "pip install -r dev/$2 failed"
  touch "$1/.complete"
}
install_tools() {
  install_venv "$TOOLS" requirements-tools.txt
}
install_checkov() { # the template linter: tests only
  local checkov
  checkov=$CACHE/checkov-$(venv_key requirements-checkov.txt)
  install_venv "$checkov" requirements-checkov.txt
  ln -sf "$checkov/bin/checkov" "$TOOLS/bin/checkov"
}

# A stand-in for the official python:TAG image (docker-library/python's Dockerfile: CPython built
# into /usr/local on debian:SUITE-slim) from Debian's own python3 of that suite: what Dockerfiles
# rely on is where they expect it. python, python3, pip and pip3 in /usr/local/bin, first on PATH;
# global `pip install` allowed (no PEP 668 EXTERNALLY-MANAGED marker: the official image has none;
# Debian's pip then installs into /usr/local/lib/pythonX.Y/dist-packages); ca-certificates, netbase
# and tzdata, as the official slim image installs; apt-get works in a RUN step. The ENV, CMD and
# user are set when it is published (publish_base_images). docs/base-images.md: where it differs.
# A foreign ARCH's is built the same way under emulation (install_qemu): mmdebstrap runs its
# maintainer scripts, and the chroots below their programs, through qemu.
build_rootfs() { # build_rootfs SUITE ARCH
  local suite=$1 arch=$2 tar dir mirror
  tar=$(rootfs_tar "$suite" "$arch")
  [ -s "$tar" ] && [ -s "$tar.env" ] && return 0
  mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  dir=$(mktemp -d "$CACHE/.rootfs.XXXXXX")
  # mmdebstrap, not debootstrap: the same 102 packages (compared with dpkg-query) in half the
  # time and CPU (19 s / 20 CPU s against 39 s / 40 CPU s here): apt fetches in parallel and
  # unpacks once. On a fresh machine it runs beside the compiles, where every CPU second counts.
  # The foreign architecture's, under qemu: 5-11 min on 2 cores (measured: docs/dev-environment.md).
  log "mmdebstrap $suite $arch from $mirror (once; ~20 s, a foreign architecture 5-11 min)"
  mmdebstrap --arch="$arch" --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
    "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 || die "mmdebstrap $suite $arch failed: see $dir.log"
  # This machine may reach PyPI through a TLS-intercepting proxy whose CA is in
  # /usr/local/share/ca-certificates: the stand-in base image trusts it, as a company's golden
  # base image would, so pip works in every container with no per-exec CA injection.
  if [ -e "${HOST_CAS[0]}" ]; then
    cp "${HOST_CAS[@]}" "$dir/usr/local/share/ca-certificates/"
    chroot "$dir" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates in the rootfs failed"
  fi
  local py ver
  py=$(readlink "$dir/usr/bin/python3") # python3.13
  ver=$(chroot "$dir" python3 -c 'import platform; print(platform.python_version())') || die "python3 does not run in the $suite $arch rootfs"
  rm -f "$dir/usr/lib/$py/EXTERNALLY-MANAGED"
  # The official image's names (its "useful symlinks"): the interpreter is Debian's; pip is a
  # console script as pip writes one (a `pip install -U pip` then replaces it, as it would there).
  ln -s "/usr/bin/$py" "$dir/usr/local/bin/$py"
  ln -s "$py" "$dir/usr/local/bin/python3"
  ln -s python3 "$dir/usr/local/bin/python"
  ln -s /usr/bin/pydoc3 "$dir/usr/local/bin/pydoc3"
  ln -s pydoc3 "$dir/usr/local/bin/pydoc"
  # The official image's site-packages is /usr/local/lib/pythonX.Y/site-packages, and Dockerfiles
  # copy trees there (`pip install --prefix=/install` in a builder stage, then
  # `COPY --from=builder /install /usr/local`); Debian's python reads dist-packages only.
  echo "import site; site.addsitedir('/usr/local/lib/$py/site-packages')" > "$dir/usr/lib/python3/dist-packages/usr-local-site-packages.pth"
  local pip
  for pip in pip pip3 "pip${py#python}"; do
    printf '#!/usr/local/bin/python3\nimport sys\nfrom pip._internal.cli.main import main\nif __name__ == "__main__":\n    sys.exit(main())\n' > "$dir/usr/local/bin/$pip"
    chmod 755 "$dir/usr/local/bin/$pip"
  done
  # Trim what an image does not need, and make the tarball reproducible (sorted, fixed mtimes).
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/* "$dir"/var/log/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/tmp/*
  find "$dir/usr/lib" "$dir/usr/local" -name __pycache__ -type d -prune -exec rm -rf {} +
  tar --sort=name --mtime='2025-01-01 00:00:00' --numeric-owner --owner=0 --group=0 \
    --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -C "$dir" -cf "$tar.tmp" .
  echo "PYTHON_VERSION=$ver" > "$tar.env"
  mv "$tar.tmp" "$tar"
  rm -rf "$dir" "$dir.log"
}
build_rootfses() {
  local image arch
  for image in $PYTHON_IMAGES; do
    for arch in $PYTHON_ARCHES; do build_rootfs "${image#*=}" "$arch"; done
  done
}

# crane (the base image's publisher, and the tests' image copier) is a tool of this module
# (go.mod's `tool` line): it is built from the go-containerregistry cmd/build already links, at
# the same version, so its compile is ~5 CPU s after cmd/build's, where a `go install` of its
# own module graph took ~45. cmd/build is compiled first: `make build`'s `go run` then finds it
# compiled, and the set-up runs while the rest (engine, mmdebstrap) is on its way.
install_crane() {
  [ -x "$CRANE" ] && return 0
  log "building crane $CRANE_VERSION (go.mod's tool) after cmd/build's packages"
  mkdir -p "$CACHE/bin"
  (cd "$ROOT" && export GOFLAGS=-mod=readonly GONOSUMDB='github.com/dagger/*,dagger.io/*' &&
    go build -o /dev/null ./cmd/build &&
    go build -o "$CRANE.tmp" github.com/google/go-containerregistry/cmd/crane) || die "building crane failed (see above)"
  mv "$CRANE.tmp" "$CRANE"
}

# The Dockerfile frontend that `# syntax=docker/dockerfile:1` names (the engine runs it as an image
# instead of its built-in one), built from BuildKit's module as its own Dockerfile builds it
# (frontend/dockerfile/cmd/dockerfile-frontend/Dockerfile: static, CGO off). In its module's
# directory: `go install pkg@version` refuses a go.mod with exclude directives, as BuildKit's has.
build_frontend() {
  [ -x "$FRONTEND" ] && return 0
  local src
  src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || die "go mod download github.com/moby/buildkit@$BUILDKIT_VERSION failed"
  mkdir -p "$CACHE/bin"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -tags "netgo static_build osusergo" \
    -ldflags "-s -w -X main.Version=buildkit-$BUILDKIT_VERSION" -o "$FRONTEND.tmp" ./frontend/dockerfile/cmd/dockerfile-frontend) ||
    die "building BuildKit's Dockerfile frontend failed (see above)"
  mv "$FRONTEND.tmp" "$FRONTEND"
}

# publish_frontend [PREFIX]: as docker.io's docker/dockerfile:1 (the tag the docs and most
# Dockerfiles name), with the official image's entrypoint and labels: the engine gives it no
# network and tells it which capabilities it may use.
publish_frontend() {
  local ref=127.0.0.1:$MIRROR_PORT/${1:-}docker/dockerfile:1 want dir
  want=$(sha256sum "$FRONTEND" | cut -c1-16)
  [ "$("$CRANE" config "$ref" 2>/dev/null | grep -o '"webapp.dev.frontend":"[0-9a-z]*"')" = "\"webapp.dev.frontend\":\"$want\"" ] && return 0
  log "publishing BuildKit $BUILDKIT_VERSION's Dockerfile frontend as docker/dockerfile:1 on the mirror"
  dir=$(mktemp -d "$CACHE/.frontend.XXXXXX")
  mkdir -p "$dir/bin" && cp "$FRONTEND" "$dir/bin/dockerfile-frontend"
  tar --sort=name --mtime='2025-01-01 00:00:00' --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$dir.tar" bin
  if ! { "$CRANE" append --insecure -f "$dir.tar" -t "$ref.tmp" >"$RUN/crane.log" 2>&1 &&
    "$CRANE" mutate --insecure "$ref.tmp" -t "$ref" --set-platform linux/amd64 --entrypoint /bin/dockerfile-frontend \
      --label moby.buildkit.frontend.network.none=true \
      --label moby.buildkit.frontend.caps=moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts \
      --label "webapp.dev.frontend=$want" >>"$RUN/crane.log" 2>&1 && drop_tmp "$ref.tmp"; }; then
    die "pushing the Dockerfile frontend failed: $RUN/crane.log"
  fi
  rm -rf "$dir" "$dir.tar"
}

# running NAME: its pid file names a live process that is still the one we started (a pid
# left by a killed session may have been reused: the start time in /proc tells them apart).
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
running() {
  [ -f "$RUN/$1.pid" ] || return 1
  local pid stamp
  read -r pid stamp < "$RUN/$1.pid"
  [ -n "$stamp" ] && [ "$(starttime "$pid")" = "$stamp" ]
}

# start NAME CMD... : run CMD in the background, logs in $RUN/NAME.log, pid in $RUN/NAME.pid
start() {
  local name=$1; shift
  running "$name" && return 0
  setsid "$@" >"$RUN/$name.log" 2>&1 < /dev/null &
  echo "$! $(starttime $!)" > "$RUN/$name.pid"
}

wait_for() { # wait_for WHAT CMD... : poll CMD up to 30 s
  local what=$1; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up in 30 s; its log: $RUN/${what}.log"
}

registry_config() { # registry_config NAME PORT STORAGE [HTPASSWD]
  cat <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $3}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$2
EOF
  [ -n "${4:-}" ] && printf 'auth:\n  htpasswd: {realm: webapp-dev, path: %s}\n' "$4"
  return 0
}

start_registries() {
  mkdir -p "$CACHE/mirror-storage" "$RUN/registry-storage"
  registry_config mirror "$MIRROR_PORT" "$CACHE/mirror-storage" > "$RUN/mirror.yml"
  start mirror docker-registry serve "$RUN/mirror.yml"
  if [ ! -s "$RUN/registry.password" ]; then
    # a fresh random password per environment: tests use it as the canary that must never leak
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$RUN/registry.password")
  fi
  (umask 077; htpasswd -Bbn "$REGISTRY_USER" "$(cat "$RUN/registry.password")" > "$RUN/htpasswd")
  registry_config registry "$REGISTRY_PORT" "$RUN/registry-storage" "$RUN/htpasswd" > "$RUN/registry.yml"
  start registry docker-registry serve "$RUN/registry.yml"
  wait_for mirror curl -fsS "http://127.0.0.1:$MIRROR_PORT/v2/"
  wait_for registry sh -c "curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:$REGISTRY_PORT/v2/ | grep -q 401"
}

# rootfs_id TAR: the rootfs tar's content hash, remembered beside it (hashing the tar costs 0.5 s
# on every `up`; the tar only changes when it is rebuilt, which makes it newer than the sidecar)
rootfs_id() {
  local side=$1.sha256
  if [ ! -s "$side" ] || [ "$1" -nt "$side" ]; then
    sha256sum "$1" | cut -c1-16 > "$side.tmp" && mv "$side.tmp" "$side"
  fi
  cat "$side"
}

# drop_tmp REF: the tag crane append wrote before mutate (the registry deletes by digest only)
drop_tmp() {
  "$CRANE" delete --insecure "${1%:*}@$("$CRANE" digest --insecure "$1")" >>"$RUN/crane.log" 2>&1
}

# official_env TAG: the ENV lines of docker-library/python's Dockerfile for TAG that describe the
# image (PYTHON_VERSION is the stand-in's own; GPG_KEY and PYTHON_SHA256 name a source download
# it did not make, so they are left out). LANG=C.UTF-8: set up to 3.12, dropped from 3.13 on.
official_env() {
  printf '%s\n' --env PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  case $1 in 3.[0-9]-* | 3.1[0-2]-*) printf '%s\n' --env LANG=C.UTF-8 ;; esac
}

# Each base image is published under each name the engine's mirror is asked for: docker.io's
# library/python:TAG and ECR Public's copy, public.ecr.aws/docker/library/python:TAG (the
# default BaseImage: CodeBuild's shared IPs get no Docker Hub rate limit from it).
# publish_base_images [PREFIX]: under PREFIX/ on the mirror (stage), else at the real names.
publish_base_images() {
  local prefix=${1:-} image
  for image in $PYTHON_IMAGES; do publish_base_image "$prefix" "${image%%=*}" "${image#*=}"; done
}
# Each tag is an image index, as the official images are: one image per PYTHON_ARCHES, pushed by
# digest (no tag of its own: the mirror lists only the real tags), then the index names them.
# Each image is what it was before arm64 was added, byte for byte: the amd64 one keeps its digest.
publish_base_image() { # publish_base_image PREFIX TAG SUITE
  local tag=$2 suite=$3 crane=$CRANE arch tar want stale=0 env images=()
  local repo=127.0.0.1:$MIRROR_PORT/$1library/python
  local ref=$repo:$tag ecr_public=127.0.0.1:$MIRROR_PORT/$1docker/library/python:$tag
  for arch in $PYTHON_ARCHES; do
    want=$(rootfs_id "$(rootfs_tar "$suite" "$arch")")-linux-$arch
    [ "$("$crane" config --platform "linux/$arch" "$ref" 2>/dev/null | grep -o '"webapp.dev.rootfs":"[0-9a-z-]*"')" = "\"webapp.dev.rootfs\":\"$want\"" ] || stale=1
  done
  if [ "$stale" = 1 ]; then
    log "publishing python:$tag (Debian $suite, ${PYTHON_ARCHES// /, }) to the docker.io mirror as $ref"
    mapfile -t env < <(official_env "$tag")
    : >"$RUN/crane.log"
    for arch in $PYTHON_ARCHES; do
      tar=$(rootfs_tar "$suite" "$arch")
      want=$(rootfs_id "$tar")-linux-$arch
      "$crane" append --insecure -f "$tar" -t "$ref.tmp" >>"$RUN/crane.log" 2>&1 || die "pushing the base image failed: $RUN/crane.log"
      # by digest, no -t: crane pushes the result by digest to the same repository
      images+=("$("$crane" mutate --insecure "$repo@$("$crane" digest --insecure "$ref.tmp")" --set-platform "linux/$arch" "${env[@]}" \
        --env "$(cat "$tar.env")" \
        --label "webapp.dev.rootfs=$want" --label "webapp.dev.debian-suite=$suite" --cmd python3 2>>"$RUN/crane.log")") ||
        die "pushing the base image failed: $RUN/crane.log"
      drop_tmp "$ref.tmp"
    done
    # a Docker manifest list: its images are Docker schema 2 manifests (crane append's)
    "$crane" index append --insecure --docker-empty-base "${images[@]/#/-m=}" -t "$ref" >>"$RUN/crane.log" 2>&1 ||
      die "pushing the base image's index failed: $RUN/crane.log"
  fi
  [ "$("$crane" digest --insecure "$ecr_public" 2>/dev/null)" = "$("$crane" digest --insecure "$ref")" ] && return 0
  log "publishing python:$tag as public.ecr.aws/docker/library/python:$tag on the mirror"
  "$crane" copy --insecure "$ref" "$ecr_public" >>"$RUN/crane.log" 2>&1 || die "copying the base image failed: $RUN/crane.log"
}

engine_config() {
  cat <<EOF
root = "$ENGINE/state"
[grpc]
  address = ["unix://$ENGINE/run/engine.sock"]
[worker.oci]
  cniBinaryPath = "$ENGINE/cni/bin"
[registry."127.0.0.1:$MIRROR_PORT"]
  http = true
  insecure = true
[registry."127.0.0.1:$REGISTRY_PORT"]
  http = true
  insecure = true
[registry."docker.io"]
  mirrors = ["127.0.0.1:$MIRROR_PORT"]
[registry."public.ecr.aws"]
  mirrors = ["127.0.0.1:$MIRROR_PORT"]
EOF
}

start_engine() {
  if running engine; then
    # the running engine may be an older build (its cache key changed since) or run with an
    # older config (e.g. a registry mirror added since): replace it
    if [ "$(readlink "/proc/$(cut -d' ' -f1 "$RUN/engine.pid")/exe")" = "$ENGINE/bin/dagger-engine" ] &&
      [ "$(engine_config)" = "$(cat "$RUN/engine.toml" 2>/dev/null)" ]; then
      return 0
    fi
    log "replacing the running engine: $ENGINE rebuilt or $RUN/engine.toml changed"
    stop engine
  fi
  engine_config > "$RUN/engine.toml"
  # A private mount namespace: the engine bind-mounts its own resolv.conf and would otherwise
  # change the host's DNS. The host network namespace is kept so 127.0.0.1 services are reachable.
  rm -f "$ENGINE/run/engine.sock"
  PATH=$ENGINE/bin:$PATH start engine unshare --mount --propagation private -- \
    "$ENGINE/bin/dagger-engine" --config "$RUN/engine.toml"
  wait_for engine test -S "$ENGINE/run/engine.sock"
}

start_moto() {
  start moto "$TOOLS/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_for moto curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/"
  # moto keeps parameters in memory: seed once per moto process (and password)
  local seeded; seeded="$(cat "$RUN/moto.pid") $(sha256sum < "$RUN/registry.password" | cut -c1-16)"
  [ "$(cat "$RUN/moto.seeded" 2>/dev/null)" = "$seeded" ] && return 0
  local aws=("$TOOLS/bin/python" "$ROOT/dev/ssm_put.py")
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_ENDPOINT_URL_SSM=http://127.0.0.1:$MOTO_PORT "${aws[@]}" \
    "$SSM_USER_PARAM=$REGISTRY_USER" "$SSM_PASSWORD_PARAM=@$RUN/registry.password"
  echo "$seeded" > "$RUN/moto.seeded"
}

start_dockerd() {
  mkdir -p "$RUN/docker"
  running dockerd || rm -f "$RUN/docker/dockerd.pid" # left by a killed session
  start dockerd dockerd --data-root "$CACHE/docker-data" --exec-root "$RUN/docker/exec" \
    --host "unix://$RUN/docker.sock" --pidfile "$RUN/docker/dockerd.pid" \
    --insecure-registry "127.0.0.1:$REGISTRY_PORT"
  wait_for dockerd docker -H "unix://$RUN/docker.sock" version
}

write_env() {
  (umask 077; cat > "$ENV_FILE.tmp" <<EOF
export _EXPERIMENTAL_DAGGER_CLI_BIN=$ENGINE/bin/dagger
export _EXPERIMENTAL_DAGGER_RUNNER_HOST=unix://$ENGINE/run/engine.sock
export DAGGER_NO_NAG=1 DO_NOT_TRACK=1
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_ENDPOINT_URL_SSM=http://127.0.0.1:$MOTO_PORT AWS_ENDPOINT_URL_ECR=http://127.0.0.1:$MOTO_PORT
export BUILD_IMAGE_REPO=127.0.0.1:$REGISTRY_PORT/webapp
export BUILD_REGISTRY_USERNAME_PARAM=$SSM_USER_PARAM
export BUILD_REGISTRY_PASSWORD_PARAM=$SSM_PASSWORD_PARAM
export DOCKER_HOST=unix://$RUN/docker.sock
export WEBAPP_DEV_TOOLS=$TOOLS/bin
export WEBAPP_DEV_REGISTRY_PASSWORD_FILE=$RUN/registry.password
export WEBAPP_DEV_CRANE=$CRANE
export WEBAPP_DEV_MIRROR=127.0.0.1:$MIRROR_PORT
export PATH=$TOOLS/bin:\$PATH
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE")
}

# Keyed cache entries that no current key names (an older engine, rootfs or venv) are removed.
prune_stale() {
  local keep=("$ENGINE" "$TOOLS" "$CACHE/checkov-$(venv_key requirements-checkov.txt)") entry k stale image tar arch
  for image in $PYTHON_IMAGES; do
    for arch in $PYTHON_ARCHES; do
      tar=$(rootfs_tar "${image#*=}" "$arch")
      keep+=("$tar" "$tar.sha256" "$tar.env")
    done
  done
  for entry in "$CACHE"/dagger-* "$CACHE"/rootfs-* "$CACHE"/tools-* "$CACHE"/checkov-*; do
    [ -e "$entry" ] || continue
    stale=1
    for k in "${keep[@]}"; do [ "$entry" = "$k" ] && stale=0; done
    [ "$stale" -eq 1 ] && { log "removing stale cache entry $entry"; rm -rf "$entry"; }
  done
  return 0
}

# bg NAME CMD...: run CMD in the background, its output in $CACHE/.up-NAME.log; wait_bg NAME...
# waits and, when one failed, shows its log and stops. On a fresh machine the slow set-up runs
# side by side: the Debian packages and the base image's mmdebstrap (network, dpkg) beside the
# engine's and syft's Go builds (CPU) and the tool venvs (pip).
declare -A BG=()
bg() {
  local name=$1; shift
  "$@" >"$CACHE/.up-$name.log" 2>&1 &
  BG[$name]=$!
}
wait_bg() {
  local name
  for name; do
    [ -n "${BG[$name]:-}" ] || continue
    wait "${BG[$name]}" || { cat "$CACHE/.up-$name.log" >&2; die "$name failed (its log above)"; }
    unset "BG[$name]"
  done
}

# syft_built: the SBOM generator the build runs (dev/install-gotool.sh, keyed by version)
build_syft() {
  bash "$ROOT/dev/install-gotool.sh" syft github.com/anchore/syft/cmd/syft "$SYFT_VERSION" "-X main.version=$SYFT_VERSION" >/dev/null
}

cmd_up() {
  need_root up
  command -v go >/dev/null || die "Go is needed to build the engine: install Go >= 1.24"
  case $FOR in all | build) ;; *) die "WEBAPP_DEV_FOR=$FOR: want all or build" ;; esac
  mkdir -p "$CACHE" "$RUN"
  # remember ip_forward as it was before anything of ours set it, for `down` to restore
  [ -f "$RUN/ip_forward.orig" ] || sysctl -n net.ipv4.ip_forward > "$RUN/ip_forward.orig"
  if [ ! -x "$ENGINE/bin/dagger-engine" ] || [ ! -x "$ENGINE/bin/dagger" ]; then
    log "building Dagger $DAGGER_VERSION and syft $SYFT_VERSION from source (once, beside the rest; logs: $CACHE/.up-*.log)"
  fi
  bg engine build_engine
  bg tools install_tools
  bg crane install_crane
  bg syft build_syft
  bg frontend build_frontend
  if [ "$FOR" = all ]; then
    bg checkov install_checkov
    bash "$ROOT/dev/install-cfn-guard.sh" --background # dev/lint.sh waits for it (~6 min once)
  fi
  install_packages
  install_qemu
  bg rootfs build_rootfses
  link_runtime
  wait_bg crane
  start_registries
  wait_bg rootfs
  publish_base_images
  wait_bg frontend
  publish_frontend
  wait_bg engine
  start_engine
  wait_bg tools
  start_moto
  [ "$FOR" = build ] || start_dockerd
  write_env
  wait_bg syft
  bash "$ROOT/dev/install-attest.sh" "$ENV_FILE" "$FOR" # issue 13: syft, cosign (tests), the KMS signing key (appends to ENV_FILE)
  if [ "$FOR" = all ]; then
    bash "$ROOT/dev/install-codedeploy-local.sh" >/dev/null # the real CodeDeploy agent, the deploy tests' oracle
    bash "$ROOT/dev/install-haproxy.sh" >/dev/null # the simulated fleet's load balancer (dev/cmd/fleet)
    wait_bg checkov
  fi
  prune_stale
  log "up; use it with: source $ENV_FILE"
  echo "$ENV_FILE"
}

stop() { # stop NAME: SIGTERM, then SIGKILL after 10 s
  running "$1" || { rm -f "$RUN/$1.pid"; return 0; }
  local pid; read -r pid _ < "$RUN/$1.pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$1.pid"
}

# iptables_cleanup: delete the rules in built-in chains that mention the engine's or dockerd's
# chains or bridges, then flush and delete those chains (CNI-*, DOCKER*).
iptables_cleanup() {
  local table rule chain chains
  command -v iptables-save >/dev/null || return 0
  for table in filter nat; do
    # grep finds nothing on a clean host: under pipefail that must not fail the teardown.
    { iptables-save -t "$table" 2>/dev/null || true; } |
      { grep -E '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*(DOCKER|CNI-|docker0|dagger0)' || true; } |
      sed 's/^-A /-D /' | while read -r rule; do
        eval "iptables -t $table $rule" 2>/dev/null || true
      done
    chains=$(iptables-save -t "$table" 2>/dev/null | sed -n 's/^:\(DOCKER[^ ]*\|CNI-[^ ]*\) .*/\1/p')
    for chain in $chains; do iptables -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $chains; do iptables -t "$table" -X "$chain" 2>/dev/null || true; done
  done
}

# docker_leftovers: what a dockerd killed without its shutdown (SIGKILL, or its session's end)
# leaves behind: its containers still running (their shims, if alive, no longer serve them), its
# containerd and shims, and the containers' network namespaces still bind-mounted under our exec
# root (and their root filesystems under the data root). rm can't remove a mount point (EBUSY),
# so `down`, CI's first step, failed on it.
# Ours are the containers our data root knows: their processes are found by cgroup
# (/docker/<id>), the daemons by our exec root on their command line.
docker_leftovers() {
  local id pid mnt
  for id in "$CACHE"/docker-data/containers/*; do
    [ -d "$id" ] || continue
    { grep -l -- "/docker/${id##*/}" /proc/[0-9]*/cgroup 2>/dev/null || true; } | cut -d/ -f3 |
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for pid in $(pgrep -f -- "$RUN/docker/exec" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  awk -v run="$RUN/" -v data="$CACHE/docker-data/" 'index($5, run) == 1 || index($5, data) == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

# instance_proxies_down: the proxies the local instances leave serving once a deployment is done
# (scripts/proxy.sh's HAProxy under `make pipeline`'s work dir, the fleet's under its dir). Their
# containers go with dockerd, so they would only hold the host port and answer 503, and a second
# app's `make pipeline` would stop on that port. Found by their config's path on the command line,
# as dockerd's leftovers are by theirs (a pid file may name a pid the kernel has given out again).
instance_proxies_down() {
  local pid cmd dir
  for pid in $(pgrep -x haproxy || true); do
    cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || continue
    for dir in "${PIPELINE_WORK:-/var/tmp/webapp-pipeline}" /var/tmp/webapp-fleet; do
      case "$cmd" in *" $dir/"*) kill "$pid" 2>/dev/null || true ;; esac
    done
  done
}

cmd_down() {
  need_root down
  local c
  instance_proxies_down
  if running dockerd; then
    for c in $(docker -H "unix://$RUN/docker.sock" ps -aq 2>/dev/null); do
      docker -H "unix://$RUN/docker.sock" rm -f "$c" >/dev/null 2>&1 || true
    done
  fi
  for c in dockerd moto engine registry mirror; do stop "$c"; done
  docker_leftovers
  # What the engine and dockerd leave behind (OFFLINE-ENGINE.md): bridges, iptables chains and
  # rules, ip_forward. Only what carries their names is touched.
  ip link delete dagger0 2>/dev/null || true
  ip link delete docker0 2>/dev/null || true
  iptables_cleanup
  if [ -f "$RUN/ip_forward.orig" ]; then
    sysctl -qw "net.ipv4.ip_forward=$(cat "$RUN/ip_forward.orig")" || true
    rm -f "$RUN/ip_forward.orig"
  fi
  rm -f "$ENGINE/run/engine.sock" /run/buildkit/buildkitd.sock
  rm -rf "$RUN/registry-storage" "$RUN/docker" "$RUN/docker.sock" "$ENV_FILE"
  log "down"
}

cmd_status() {
  local c
  for c in engine mirror registry moto dockerd; do
    if running "$c"; then echo "$c: running (pid $(cut -d' ' -f1 "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

cmd_stage() {
  need_root stage
  [[ $1 =~ ^[a-z0-9-]+$ ]] || die "stage NAME: a name of a-z, 0-9 and -, e.g. $0 stage issue-23"
  [ -x "$CRANE" ] || die "crane $CRANE_VERSION is not built: run '$0 up' first"
  curl -fsS "http://127.0.0.1:$MIRROR_PORT/v2/" >/dev/null || die "the mirror is not running: run '$0 up' first"
  install_qemu
  build_rootfses
  publish_base_images "stage/$1/"
  build_frontend
  publish_frontend "stage/$1/"
  log "staged: 127.0.0.1:$MIRROR_PORT/stage/$1/library/python:{$(for i in $PYTHON_IMAGES; do printf '%s,' "${i%%=*}"; done | sed 's/,$//')}"
}

main() {
  case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) [ -f "$ENV_FILE" ] || die "not up: run 'dev/env.sh up' first"; cat "$ENV_FILE" ;;
    stage) cmd_stage "${2:-}" ;;
    *) echo "usage: $0 up|down|status|env|stage NAME" >&2; exit 2 ;;
  esac
}

main "$@"
