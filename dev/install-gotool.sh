#!/usr/bin/env bash
# install-gotool.sh NAME MODULE/PKG VERSION LDFLAGS: build a Go command from the module proxy, once,
# into $WEBAPP_DEV_CACHE/NAME-VERSION/bin/NAME (keyed by version, idempotent; prints the path).
# Used for the maintained tools of issue 13 (cosign verifies on the instance, syft writes the SBOM):
# no release binaries can be downloaded here, the Go proxy serves their source.
set -euo pipefail

main() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-}
  local cache=${WEBAPP_DEV_CACHE:-/var/cache/webapp-dev}
  local dir=$cache/$name-$version bin
  bin=$dir/bin/$name
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || { echo "dev/install-gotool: need Go to build $name $version" >&2; exit 1; }
    echo "dev/install-gotool: building $name $version from the Go module proxy (once; several minutes on 2 cores)" >&2
    local work
    work=$(mktemp -d "$cache/.$name-build.XXXXXX")
    # nice: the engine's build (needed sooner) and the tests share these cores; -trimpath -s -w:
    # a smaller binary; CGO_ENABLED=0 as the tools' release builds, and as the engine's build
    # (dev/env.sh build_engine): the packages they share are compiled once (~45 CPU s here).
    if ! GOBIN=$work GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"; then
      rm -rf "$work"
      echo "dev/install-gotool: go install $pkg@$version failed (see above)" >&2
      exit 1
    fi
    mkdir -p "$dir/bin"
    mv "$work/$name" "$bin"
    rm -rf "$work"
  fi
  echo "$bin"
}

main "$@"
