#!/usr/bin/env bash
# The baseline the Dagger build is measured against: the build the seed describes, as a plain
# shell script on the host (pip install; flake8; pytest; docker build; docker push), against the
# dev environment's dockerd and registry. bench/ runs it; by hand:
#
#   source /run/webapp-dev/env
#   bench/baseline.sh REPO_ROOT IMAGE_TAG      # e.g. . 127.0.0.1:5001/webapp-baseline:dev
#
# State it keeps between runs (what "warm" means for it): the venv and pip cache under
# $BASELINE_CACHE (default /var/cache/webapp-bench/baseline), dockerd's layer cache.
# BASELINE_DOCKERFILE: the Dockerfile to build (default: bench/Dockerfile.baseline).
# BASELINE_BASE: the base image it builds on (default: the mirror's python:3.13-slim; bench's fresh
# scenario gives each run a new tag of it).
# BASELINE_EQUAL=1: the same work as the Dagger build, not just the seed's: the image also runs
# (a smoke test: GET /healthz until it answers, 30 s at most), syft writes its SBOM (CycloneDX),
# and cosign signs the pushed digest with the KMS key and attaches the SBOM. Tools and key from
# the dev environment: $WEBAPP_DEV_SYFT, $WEBAPP_DEV_COSIGN, $BUILD_SIGNING_KEY (moto's KMS).
# Prints the pushed image by digest (repo@sha256:...) on stdout.
set -euo pipefail

ctx=""

say() { printf 'baseline: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "need $1"; }

main() {
  [ $# -eq 2 ] || die "usage: $0 REPO_ROOT IMAGE_TAG"
  local root=$1 tag=$2 here cache
  exec 3>&1 1>&2  # the tools' output goes to stderr: stdout is the pushed image only
  need_cmd python3; need_cmd docker
  if [ "${BASELINE_EQUAL:-0}" = 1 ]; then
    need_cmd curl
    if [ ! -x "${WEBAPP_DEV_SYFT:-}" ] || [ ! -x "${WEBAPP_DEV_COSIGN:-}" ] || [ -z "${BUILD_SIGNING_KEY:-}" ]; then
      die "BASELINE_EQUAL=1 needs WEBAPP_DEV_SYFT, WEBAPP_DEV_COSIGN and BUILD_SIGNING_KEY (source /run/webapp-dev/env)"
    fi
  fi
  here=$(cd "$(dirname "$0")" && pwd)
  cache=${BASELINE_CACHE:-/var/cache/webapp-bench/baseline}
  mkdir -p "$cache"
  # PyPI like the Dagger build, not this machine's local wheel folder
  unset PIP_FIND_LINKS
  export PIP_CACHE_DIR=$cache/pip PIP_DISABLE_PIP_VERSION_CHECK=1

  [ -x "$cache/venv/bin/python" ] || python3 -m venv "$cache/venv"
  "$cache/venv/bin/pip" install -q -r "$root/app/requirements-dev.txt"
  (cd "$root/app" && "$cache/venv/bin/flake8" .)
  (cd "$root/app" && "$cache/venv/bin/python" -m pytest -q -p no:cacheprovider)

  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT  # global: the trap runs after main returns
  cp -a "$root/app/." "$ctx/"
  rm -rf "$ctx/tests" "$ctx/requirements-dev.txt" "$ctx/setup.cfg"
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  cat /usr/local/share/ca-certificates/*.crt > "$ctx/ca.crt" 2>/dev/null || : > "$ctx/ca.crt"
  cp "${BASELINE_DOCKERFILE:-$here/Dockerfile.baseline}" "$ctx/Dockerfile"
  docker build -q --build-arg BASE="${BASELINE_BASE:-127.0.0.1:5000/library/python:3.13-slim}" -t "$tag" "$ctx" >/dev/null
  [ "${BASELINE_EQUAL:-0}" != 1 ] || smoke "$tag"
  docker push -q "$tag" >/dev/null
  local ref
  # this repository's digest: an image identical to one pushed elsewhere before (the same
  # cached layers) lists that repository's digest too, maybe first
  ref=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" | grep -m1 "^${tag%:*}@") \
    || die "docker push $tag left no digest of ${tag%:*}"
  [ "${BASELINE_EQUAL:-0}" != 1 ] || attest "$ref" "$ctx"
  say "pushed $ref"
  echo "$ref" >&3
}

# smoke TAG: run the image, GET /healthz until it answers 2xx (30 s at most), remove it.
smoke() {
  local name=baseline-smoke-$$ port i
  docker run -d --name "$name" -p 127.0.0.1::8080 "$1" >/dev/null
  port=$(docker port "$name" 8080/tcp | head -1)
  for i in $(seq 1 300); do
    if curl -fsS -o /dev/null "http://$port/healthz"; then docker rm -f "$name" >/dev/null; return 0; fi
    sleep 0.1
  done
  docker logs "$name" >&2 || true
  docker rm -f "$name" >/dev/null
  die "smoke: $1 did not answer GET /healthz in 30 s (iteration $i)"
}

# attest REF DIR: syft's SBOM of the pushed image, then cosign signs it and attaches the SBOM.
attest() {
  local ref=$1 dir=$2
  # syft's settings as the build runs it (internal/attest): packages only, no per-file listing
  SYFT_CHECK_FOR_APP_UPDATE=false SYFT_FILE_METADATA_SELECTION=none SYFT_FILE_METADATA_DIGESTS='' \
    "$WEBAPP_DEV_SYFT" scan "registry:$ref" --quiet -o "cyclonedx-json=$dir/sbom.cdx.json"
  local cosign=("$WEBAPP_DEV_COSIGN" --allow-http-registry --allow-insecure-registry)
  "${cosign[@]}" sign --yes --tlog-upload=false --key "$BUILD_SIGNING_KEY" "$ref" > "$dir/cosign.log" 2>&1 \
    || { cat "$dir/cosign.log" >&2; die "cosign sign $ref failed"; }
  "${cosign[@]}" attest --yes --tlog-upload=false --key "$BUILD_SIGNING_KEY" --type cyclonedx \
    --predicate "$dir/sbom.cdx.json" "$ref" > "$dir/cosign.log" 2>&1 \
    || { cat "$dir/cosign.log" >&2; die "cosign attest $ref failed"; }
}

main "$@"
