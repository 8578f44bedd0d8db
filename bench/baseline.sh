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
set -euo pipefail

ctx=""

say() { printf 'baseline: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "need $1"; }

main() {
  [ $# -eq 2 ] || die "usage: $0 REPO_ROOT IMAGE_TAG"
  local root=$1 tag=$2 here cache
  need_cmd python3; need_cmd docker
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
  docker build -q --build-arg BASE=127.0.0.1:5000/library/python:3.13-slim -t "$tag" "$ctx" >/dev/null
  docker push -q "$tag" >/dev/null
  say "pushed $tag"
}

main "$@"
