#!/usr/bin/env bash
# dev/install-attest.sh ENV_FILE: what issue 13 (SBOM, provenance, signing) needs in the dev env.
# Called once by `dev/env.sh up`, after it wrote ENV_FILE; idempotent, a few ms when warm.
#   - syft (writes the SBOM) and cosign (verifies on the instance), built from the Go module proxy
#     once, cached under $WEBAPP_DEV_CACHE keyed by version (dev/versions.env)
#   - an asymmetric signing key in moto's KMS (ECC_NIST_P256, SIGN_VERIFY) as alias/webapp-signing:
#     the build signs with kms:Sign, the hooks verify with kms:GetPublicKey, as on AWS
#   - appends to ENV_FILE: AWS_ENDPOINT_URL_KMS, BUILD_SIGNING_KEY, WEBAPP_DEV_SYFT, WEBAPP_DEV_COSIGN
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$ROOT/dev/versions.env"
KEY_ALIAS=alias/webapp-signing

log() { printf 'dev/install-attest: %s\n' "$*" >&2; }
die() { printf 'dev/install-attest: error: %s\n' "$*" >&2; exit 1; }

# ensure_kms_key RUN_DIR: the signing key, once per moto process (moto keeps keys in memory).
ensure_kms_key() {
  local aws=("$WEBAPP_DEV_TOOLS/aws" --region "$AWS_REGION") id stamp=$1/kms.seeded seeded
  seeded=$(cat "$1/moto.pid" 2>/dev/null)
  [ -n "$seeded" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$seeded" ] && return 0
  if ! "${aws[@]}" kms describe-key --key-id "$KEY_ALIAS" >/dev/null 2>&1; then
    id=$("${aws[@]}" kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY \
      --description "webapp-pipeline image signing (dev)" --query KeyMetadata.KeyId --output text) ||
      die "moto KMS create-key failed"
    "${aws[@]}" kms create-alias --alias-name "$KEY_ALIAS" --target-key-id "$id" || die "moto KMS create-alias failed"
    log "created the signing key $KEY_ALIAS ($id) in moto's KMS"
  fi
  if [ -n "$seeded" ]; then echo "$seeded" > "$stamp"; fi
}

# prune_stale_tools: cached builds of versions no longer pinned.
prune_stale_tools() {
  local cache=${WEBAPP_DEV_CACHE:-/var/cache/webapp-dev} entry
  for entry in "$cache"/cosign-* "$cache"/syft-*; do
    [ -d "$entry" ] || continue
    case $entry in */cosign-"$COSIGN_VERSION" | */syft-"$SYFT_VERSION") continue ;; esac
    log "removing stale cache entry $entry"
    rm -rf "$entry"
  done
}

main() {
  local env_file=${1:?usage: dev/install-attest.sh ENV_FILE [all|build]} for=${2:-all}
  [ -f "$env_file" ] || die "no $env_file: dev/env.sh up writes it first"
  # shellcheck source=/dev/null
  source "$env_file"
  local syft cosign kms_url
  syft=$(bash "$ROOT/dev/install-gotool.sh" syft github.com/anchore/syft/cmd/syft "$SYFT_VERSION" \
    "-X main.version=$SYFT_VERSION")
  cosign="" # the instances' verifier: the tests need it, the build does not
  [ "$for" = build ] || cosign=$(bash "$ROOT/dev/install-gotool.sh" cosign github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
    "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION")
  prune_stale_tools
  kms_url=${AWS_ENDPOINT_URL_SSM:?the env file names no moto endpoint}
  export AWS_ENDPOINT_URL_KMS=$kms_url
  ensure_kms_key "$(dirname "$env_file")"
  grep -q '^export BUILD_SIGNING_KEY=' "$env_file" && return 0
  (umask 077; {
    cat "$env_file"
    cat <<EOT
export AWS_ENDPOINT_URL_KMS=$kms_url
export BUILD_SIGNING_KEY=awskms:///$KEY_ALIAS
export WEBAPP_DEV_SYFT=$syft
EOT
    [ -z "$cosign" ] || echo "export WEBAPP_DEV_COSIGN=$cosign"
  } > "$env_file.attest.tmp"
  mv "$env_file.attest.tmp" "$env_file")
}

main "$@"
