# shellcheck shell=bash
# verify_image: refuse an image this pipeline did not build (sourced by lib.sh; AfterInstall calls
# it after the pull, before anything runs it: a refused digest never replaces the serving container).
#
# With cosign (a maintained verifier; EXTRA_PATH may name where it is installed) it checks that
#   1. $IMAGE carries a signature by SIGNING_KEY over its digest (`cosign verify`), and
#   2. a SLSA provenance signed by the same key says it was built from SOURCE_REPOSITORY
#      (`cosign verify-attestation --type slsaprovenance1` with a Rego policy).
# The build signs with an AWS KMS key; on AWS, SIGNING_KEY=awskms:///<key ARN> and cosign reads the
# public key with kms:GetPublicKey (the instance role's); no private key is ever on the instance.
#
# Settings: SIGNING_KEY and SOURCE_REPOSITORY come from image.env; the same keys in deploy.env win
# (pin them there so a bundle cannot name another key). VERIFY_IMAGE=off (deploy.env or the hook's
# environment) skips the check for registries that cannot hold signatures, with a warning each time.

#
# First, whatever VERIFY_IMAGE says: the image docker pulled must be of this instance's own platform
# (docker's, e.g. linux/arm64 on Graviton). For an image index (pipeline.yml's platforms) docker
# picks this platform's image from it; the index's signature covers it (the index names each
# platform's image by digest), the provenance names every platform's digest, and the build signs
# each platform's image too (`cosign verify` of repo@<that digest> by hand).

# verify_image: one `die` line naming the digest and the cause when it does not verify.
verify_image() {
  verify_platform
  if [ "${VERIFY_IMAGE:-on}" = off ]; then
    log "WARNING: VERIFY_IMAGE=off: $IMAGE runs UNVERIFIED (no signature or provenance check); remove VERIFY_IMAGE=off from the instance settings to check again"
    journal verified "NOT verified: VERIFY_IMAGE=off"
    return 0
  fi
  [ -n "${SIGNING_KEY:-}" ] ||
    die "refusing $IMAGE: no SIGNING_KEY to verify it with (image.env or deploy.env); set VERIFY_IMAGE=off in deploy.env to run unsigned images"
  [ -n "${SOURCE_REPOSITORY:-}" ] ||
    die "refusing $IMAGE: no SOURCE_REPOSITORY to check its provenance against (image.env or deploy.env)"
  command -v cosign >/dev/null 2>&1 ||
    die "refusing $IMAGE: cosign is not installed (PATH=$PATH; EXTRA_PATH names extra directories); set VERIFY_IMAGE=off to deploy without the check"
  local out flags=()
  VERIFY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/webapp-verify.XXXXXX")
  verify_login
  # plain http for a registry on this host (the dev registry), as the build's push does
  case $REGISTRY in 127.*|localhost|localhost:*) flags+=(--allow-http-registry --allow-insecure-registry) ;; esac
  # key-based, no transparency log: what the build writes (cosign's tag scheme, sha256-<hex>.sig/.att).
  # An empty trusted root: a key needs none of Sigstore's public roots, and cosign would otherwise
  # fetch them (TUF, over the internet) on every call.
  printf '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n' > "$VERIFY_DIR/trusted_root.json"
  flags+=(--key "$SIGNING_KEY" --insecure-ignore-tlog=true --trusted-root "$VERIFY_DIR/trusted_root.json")
  out=$(AWS_REGION=$AWS_REGION HOME=$VERIFY_DIR cosign verify "${flags[@]}" "$IMAGE" 2>&1 >/dev/null) ||
    verify_refuse "no valid signature by $SIGNING_KEY ($(verify_reason "$out"))"
  printf 'package signature\ndefault allow = false\nallow {\n  input.predicate.buildDefinition.externalParameters.source.repository == "%s"\n}\n' \
    "$SOURCE_REPOSITORY" > "$VERIFY_DIR/provenance.rego"
  out=$(AWS_REGION=$AWS_REGION HOME=$VERIFY_DIR cosign verify-attestation "${flags[@]}" --type slsaprovenance1 \
    --policy "$VERIFY_DIR/provenance.rego" "$IMAGE" 2>&1 >/dev/null) ||
    verify_refuse "no provenance signed by $SIGNING_KEY naming $SOURCE_REPOSITORY ($(verify_reason "$out"))"
  rm -rf "$VERIFY_DIR"
  log "verified $IMAGE: signed by $SIGNING_KEY, provenance names $SOURCE_REPOSITORY"
  journal verified "signed by $SIGNING_KEY, provenance names $SOURCE_REPOSITORY"
}

# verify_refuse REASON: remove what it pulled (unless a container uses it), then fail the hook.
verify_refuse() {
  [ -z "${VERIFY_DIR:-}" ] || rm -rf "$VERIFY_DIR"
  docker image rm "$IMAGE" >/dev/null 2>&1 || true
  die "refusing $IMAGE: $1"
}

# verify_login: cosign reads the signature with docker's login. ensure_image logs in only when it
# pulls (and then removes its DOCKER_CONFIG on exit); otherwise log in here, into VERIFY_DIR.
verify_login() {
  [ -n "${DOCKER_CONFIG:-}" ] && [ -s "$DOCKER_CONFIG/config.json" ] && return 0
  DOCKER_CONFIG=$VERIFY_DIR/docker
  mkdir -m 700 "$DOCKER_CONFIG"
  export DOCKER_CONFIG
  CLEANUP+=("$VERIFY_DIR")
  registry_login
}

# verify_reason: cosign's last error line, shortened (its messages are long and multi-line).
verify_reason() {
  local line
  line=$(printf '%s\n' "$1" | grep -v '^WARNING' | grep . | tail -n 1) || true
  line=${line#error during command execution: }
  printf '%s' "${line:0:300}"
}

# verify_platform: refuse an image of another platform than this instance's (docker's own, never a
# setting): it could only fail with "exec format error" once it replaced the serving container.
# docker's own is its client's DOCKER_DEFAULT_PLATFORM when set (docker pull and run then take
# that platform's image and run it under emulation: dev/fleet's arm64 instance), else the daemon's.
verify_platform() {
  local want got
  want=$(docker_platform "${DOCKER_DEFAULT_PLATFORM:-$(docker info --format '{{.OSType}}/{{.Architecture}}')}")
  got=$(docker_platform "$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "$IMAGE")") ||
    die "refusing $IMAGE: docker cannot read its platform"
  [ "$got" = "$want" ] ||
    verify_refuse "it is a $got image and this instance is $want: add $want to platforms in pipeline.yml (one image index for both)"
}

# docker_platform OS/ARCH: docker's names (x86_64, aarch64 from `docker info`) as image platforms.
docker_platform() {
  local os=${1%%/*} arch=${1#*/}
  case $arch in x86_64) arch=amd64 ;; aarch64|arm64/v8) arch=arm64 ;; esac
  printf '%s/%s' "$os" "$arch"
}
