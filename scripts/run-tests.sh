#!/usr/bin/env bash
# Every test of the project, in one run: pytest (unit + integration against real containers),
# lint, then the molecule scenarios. Each part runs even when an earlier one failed, so one
# run reports everything; the exit status is non-zero when any part failed.
set -uo pipefail

: "${CACHE_DIR:?run through make test}"
# MOLECULE_SCENARIOS runs a subset, e.g. MOLECULE_SCENARIOS=remote.
scenarios=${MOLECULE_SCENARIOS:-smoke default docker_engine remote fleet}
failed=()

step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name"
  "$@"
  local rc=$?
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s"
  return $rc
}

run_pytest() {
  pytest -p no:cacheprovider -ra tests "$@"
  local rc=$?
  # pytest exits 5 when it collected nothing: the tests went missing (a bad path, a broken
  # conftest), which must not read as a pass.
  if [ $rc -eq 5 ]; then
    echo "pytest collected no tests under tests/: failing, since every run has tests to run"
    return 1
  fi
  return $rc
}

run_lint() {
  local rc=0
  ansible-lint --offline || rc=1
  scripts/sanity.sh || rc=1
  return $rc
}

step pytest run_pytest || failed+=(pytest)
step lint run_lint || failed+=(lint)
for s in $scenarios; do
  step "molecule $s" molecule test -s "$s" || failed+=("molecule:$s")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test parts passed"
