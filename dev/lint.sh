#!/usr/bin/env bash
# Every linter on the repo, with the pinned tools; exits non-zero on any finding.
#
#   bash dev/lint.sh        (or: make lint)
#
# Tools: shellcheck and the pinned Python tools of the dev environment (yamllint, cfn-lint,
# checkov from dev/requirements-*.txt). They are taken from PATH; if cfn-lint is not on PATH and
# the dev environment is up, its env file is sourced first. A tool whose version differs from its
# pin is an error: a different version finds different things. cfn-guard (CFN_GUARD_VERSION in
# dev/versions.env) comes from dev/install-cfn-guard.sh (cached; built once, ~6 min), with the
# AWS Guard rules registry from the peers: $WEBAPP_PEERS, else the first shared/peers beside the
# repository or one of its parents (CI: ../shared beside the checkout, read-only). flake8 is not run here: the build
# runs it (inside the image's Python) and reports it as JUnit.
#
# Runs every tool even when an earlier one fails, prints one summary line per tool, and changes
# nothing in the tree (safe to re-run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV_ENV_FILE=${WEBAPP_DEV_RUN:-/run/webapp-dev}/env
TEMPLATE=infra/template.yml
# shellcheck source=SCRIPTDIR/versions.env
source "$ROOT/dev/versions.env"
# The registry's rule folders for the services the template's resources belong to (S3, SNS, ECR,
# KMS, CloudWatch and Logs, CodeBuild, IAM, ELBv2); a rule file whose resources are absent is a SKIP.
GUARD_RULE_DIRS=(amazon_s3 amazon_sns aws_ecr aws_kms cloudwatch codebuild iam elastic_load_balancing_v2)

log() { printf 'dev/lint: %s\n' "$*" >&2; }
die() { printf 'dev/lint: error: %s\n' "$*" >&2; exit 2; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"; }

SUMMARY=()
FAILED=0
# record TOOL FINDINGS DETAIL : one summary line; any finding fails the run.
record() {
  local status=ok
  if [ "$2" -ne 0 ]; then status=FAIL; FAILED=1; fi
  SUMMARY+=("$(printf '%-10s %-4s %s' "$1" "$status" "$3")")
}

# The tools venv is on PATH after `source /run/webapp-dev/env`; pick it up if it is not yet.
find_tools() {
  if ! command -v cfn-lint >/dev/null 2>&1 && [ -r "$DEV_ENV_FILE" ]; then
    log "sourcing $DEV_ENV_FILE for the pinned tools"
    # shellcheck source=/dev/null
    source "$DEV_ENV_FILE"
  fi
  local hint="run 'bash dev/env.sh up' and 'source $DEV_ENV_FILE'"
  need_cmd shellcheck "apt-get install shellcheck"
  need_cmd yamllint "$hint"
  need_cmd cfn-lint "$hint"
  need_cmd checkov "$hint"
}

# pin_of NAME : the version NAME is pinned to in dev/requirements-*.txt (empty if none).
pin_of() {
  sed -n "s/^$1==\([^ ;#]*\).*/\1/p" "$ROOT"/dev/requirements-*.txt 2>/dev/null | head -n 1
}

# check_pin NAME VERSION : fail when NAME is pinned and VERSION is not the pin.
check_pin() {
  local pin
  pin=$(pin_of "$1")
  if [ -z "$pin" ]; then
    log "$1 has no pin in dev/requirements-*.txt; using $2"
  elif [ "$pin" != "$2" ]; then
    die "$1 $2 on PATH ($(command -v "$1")), pinned $pin: use the dev environment's tools" \
      "(source $DEV_ENV_FILE)"
  fi
}

run_shellcheck() {
  local files=() f out n version
  for f in scripts/*.sh dev/*.sh infra/instance/*.sh .ci/run; do
    [ -f "$f" ] && files+=("$f")
  done
  version=$(shellcheck --version | sed -n 's/^version: //p')
  out=$(shellcheck --external-sources --format=gcc "${files[@]}" || true)
  n=0
  [ -z "$out" ] || { printf '%s\n' "$out" >&2; n=$(printf '%s\n' "$out" | wc -l); }
  record shellcheck "$n" "$n findings in ${#files[@]} files (shellcheck $version)"
}

run_gofmt() {
  local out n files
  mapfile -t files < <(git ls-files '*.go')
  out=$(gofmt -l "${files[@]}" || true)
  n=0
  [ -z "$out" ] || { printf 'gofmt would change: %s\n' "$out" >&2; n=$(printf '%s\n' "$out" | wc -l); }
  record gofmt "$n" "$n unformatted Go files ($(go version | cut -d' ' -f3))"
}

# yaml_files : every YAML file git knows about (tracked or new, not ignored), one per line.
yaml_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- '*.yml' '*.yaml' .yamllint | sort -u
  else
    find . \( -name .git -o -name .venv -o -name dist -o -name node_modules \) -prune -o \
      -type f \( -name '*.yml' -o -name '*.yaml' -o -name .yamllint \) -print | sed 's#^\./##' | sort
  fi
}

run_yamllint() {
  local version out errors warnings files=()
  version=$(yamllint --version | awk '{print $2}')
  check_pin yamllint "$version"
  mapfile -t files < <(yaml_files)
  [ "${#files[@]}" -gt 0 ] || die "no YAML files found under $ROOT"
  out=$(yamllint --strict --format parsable -c .yamllint "${files[@]}" || true)
  errors=$(printf '%s\n' "$out" | grep -c ' \[error\] ' || true)
  warnings=$(printf '%s\n' "$out" | grep -c ' \[warning\] ' || true)
  [ -z "$out" ] || printf '%s\n' "$out" >&2
  record yamllint $((errors + warnings)) \
    "$errors errors, $warnings warnings in ${#files[@]} files (yamllint $version)"
}

run_cfn_lint() {
  local version out rc=0 errors warnings infos
  version=$(cfn-lint --version | awk '{print $2}')
  check_pin cfn-lint "$version"
  out=$(cfn-lint --format parseable -- "$TEMPLATE") || rc=$?
  errors=$(printf '%s\n' "$out" | grep -cE ':E[0-9]+:' || true)
  warnings=$(printf '%s\n' "$out" | grep -cE ':W[0-9]+:' || true)
  infos=$(printf '%s\n' "$out" | grep -cE ':I[0-9]+:' || true)
  [ -z "$out" ] || printf '%s\n' "$out" >&2
  # A non-zero exit without a parsed finding (a crash) still counts as a failure.
  local n=$((errors + warnings + infos))
  [ "$rc" -eq 0 ] || [ "$n" -gt 0 ] || n=1
  record cfn-lint "$n" \
    "$errors errors, $warnings warnings, $infos informational in $TEMPLATE (cfn-lint $version)"
}

run_checkov() {
  local version out rc=0 passed failed skipped
  version=$(checkov --version)
  check_pin checkov "$version"
  # --skip-download: no calls home for guideline links (and no network needed).
  out=$(checkov --file "$TEMPLATE" --framework cloudformation --quiet --compact --skip-download \
    2>&1) || rc=$?
  read -r passed failed skipped < <(printf '%s\n' "$out" |
    sed -n 's/.*Passed checks: \([0-9]*\), Failed checks: \([0-9]*\), Skipped checks: \([0-9]*\).*/\1 \2 \3/p' |
    head -n 1) || true
  if [ -z "${passed:-}" ]; then
    printf '%s\n' "$out" >&2
    record checkov 1 "no result summary (checkov exit $rc) (checkov $version)"
    return
  fi
  [ "$failed" -eq 0 ] || printf '%s\n' "$out" >&2
  local n=$failed stale
  [ "$rc" -eq 0 ] || [ "$n" -gt 0 ] || n=1
  stale=$(checkov_stale_skips)
  n=$((n + stale))
  record checkov "$n" \
    "$passed passed, $failed failed, $skipped skipped (reasons in the resources' Metadata), $stale skips no longer needed (checkov $version)"
}

# checkov_stale_skips : prints how many Metadata checkov.skip entries hide nothing. With every
# skip taken out at once, the checks that fail must be exactly the skipped ones (check id and
# resource); a skip whose check would pass is reported.
checkov_stale_skips() {
  local copy skips failing stale=0 s
  copy=$(mktemp --suffix=.yml)
  sed 's/- id: CKV_/- id: XCKV_/' "$TEMPLATE" > "$copy"
  # "CKV_ID Resource" for each skip: the resource is the last two-space key above it
  skips=$(awk '/^  [A-Za-z0-9]+:$/ { r = substr($1, 1, length($1) - 1) }
    /^ +- id: CKV_/ { print $3, r }' "$TEMPLATE" | sort -u)
  failing=$(checkov --file "$copy" --framework cloudformation --quiet --compact --skip-download 2>&1 |
    awk '/^Check: CKV_/ { id = substr($2, 1, length($2) - 1) }
      /FAILED for resource:/ { n = split($NF, a, "."); print id, a[n] }' | sort -u)
  rm -f "$copy"
  while read -r s; do
    [ -n "$s" ] || continue
    grep -qxF "$s" <<<"$failing" && continue
    printf 'checkov: %s skips %s, which passes without the skip: remove it\n' "${s#* }" "${s%% *}" >&2
    stale=$((stale + 1))
  done <<<"$skips"
  echo "$stale"
}

# cfn-guard with the AWS Guard rules registry: one PASS/FAIL/SKIP per rule file. A finding is
# fixed in the template or suppressed in the resource's Metadata.guard.SuppressedRules, with the
# reason beside it (Metadata.guard.Reasons).
guard_rules_tarball() {
  local dir=$ROOT name=$GUARD_RULES_REGISTRY.tar.gz
  if [ -n "${WEBAPP_PEERS:-}" ]; then echo "$WEBAPP_PEERS/$name"; return 0; fi
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    if [ -f "$dir/shared/peers/$name" ]; then echo "$dir/shared/peers/$name"; return 0; fi
  done
  echo "../shared/peers/$name"
}

run_cfn_guard() {
  local guard version rules args=() out rc=0 passed failed skipped d tarball
  tarball=$(guard_rules_tarball)
  [ -r "$tarball" ] ||
    die "the AWS Guard rules registry is not at $tarball (shared/peers beside the repository, or set WEBAPP_PEERS=DIR)"
  guard=$(bash "$ROOT/dev/install-cfn-guard.sh") || die "cfn-guard $CFN_GUARD_VERSION could not be installed (see above)"
  version=$("$guard" --version | awk '{print $2}')
  [ "$version" = "$CFN_GUARD_VERSION" ] || die "$guard is cfn-guard $version, pinned $CFN_GUARD_VERSION"
  rules=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: the directory is this run's
  trap "rm -rf '$rules'" RETURN
  tar -xzf "$tarball" -C "$rules" --strip-components=1 "$GUARD_RULES_REGISTRY/rules/aws"
  for d in "${GUARD_RULE_DIRS[@]}"; do
    [ -d "$rules/rules/aws/$d" ] || die "no rule folder rules/aws/$d in $tarball"
    args+=(--rules "$rules/rules/aws/$d")
  done
  out=$("$guard" validate --data "$TEMPLATE" "${args[@]}" --show-summary all 2>&1) || rc=$?
  passed=$(printf '%s\n' "$out" | grep -c 'Status = PASS' || true)
  failed=$(printf '%s\n' "$out" | grep -c 'Status = FAIL' || true)
  skipped=$(printf '%s\n' "$out" | grep -c 'Status = SKIP' || true)
  if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then
    # the failures, with their resources and messages (the summary alone names only the rule)
    "$guard" validate --data "$TEMPLATE" "${args[@]}" --show-summary fail 2>&1 | sed -n '/FAIL\|Resource\|Violation\|Fix\|PropertyPath/p' >&2 || true
  fi
  local n=$failed suppressions stale
  [ "$rc" -eq 0 ] || [ "$n" -gt 0 ] || n=1
  read -r suppressions stale < <(guard_stale_suppressions "$guard" "$rules")
  n=$((n + stale))
  record cfn-guard "$n" \
    "$passed passed, $failed failed, $skipped skipped rule files of $GUARD_RULES_REGISTRY (${GUARD_RULE_DIRS[*]}); $suppressions suppressions, $stale no longer needed (cfn-guard $version)"
}

# guard_stale_suppressions GUARD RULES_DIR : prints "SUPPRESSIONS STALE". Each suppression
# (a rule name in a resource's Metadata.guard.SuppressedRules, flow or block list) is taken out
# alone; if its rule then still does not fail, the suppression hides nothing and is reported.
guard_stale_suppressions() {
  local guard=$1 rules=$2 line rule file copy out total=0 stale=0
  copy=$(mktemp --suffix=.yml) # cfn-guard skips a data file whose name does not say YAML or JSON
  while read -r line rule; do
    total=$((total + 1))
    file=$(grep -rlE "^rule $rule( |\{|$)" "$rules/rules/aws" --include='*.guard' | head -n 1)
    [ -n "$file" ] || { printf 'cfn-guard: %s:%s suppresses %s, which no rule file defines\n' "$TEMPLATE" "$line" "$rule" >&2; stale=$((stale + 1)); continue; }
    sed "${line}s/\b$rule\b/NOT-$rule/" "$TEMPLATE" > "$copy"
    out=$("$guard" validate --data "$copy" --rules "$file" --show-summary all 2>&1 || true)
    if [[ $out != *"Status = FAIL"* ]]; then
      printf 'cfn-guard: %s:%s suppresses %s, which passes without it: remove it\n' "$TEMPLATE" "$line" "$rule" >&2
      stale=$((stale + 1))
    fi
  done < <(awk '
    /SuppressedRules:/ {
      if (match($0, /\[.*\]/)) {
        n = split(substr($0, RSTART + 1, RLENGTH - 2), a, /, */)
        for (i = 1; i <= n; i++) print NR, a[i]
        inlist = 0; next
      }
      inlist = 1; next
    }
    inlist && /^[[:space:]]+- [A-Z0-9_]+[[:space:]]*$/ { print NR, $2; next }
    { inlist = 0 }' "$TEMPLATE")
  rm -f "$copy"
  echo "$total $stale"
}

main() {
  cd "$ROOT"
  find_tools
  run_shellcheck
  run_gofmt
  run_yamllint
  run_cfn_lint
  run_checkov
  run_cfn_guard
  local line
  for line in "${SUMMARY[@]}"; do log "$line"; done
  if [ "$FAILED" -ne 0 ]; then
    log "FAILED: fix the findings above"
    return 1
  fi
  log "all linters clean"
}

main "$@"
