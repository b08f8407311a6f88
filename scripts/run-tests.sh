#!/usr/bin/env bash
# Every test of the project, in one run: pytest (unit + integration against real containers),
# lint, then the molecule scenarios. Each part runs even when an earlier one failed, so one
# run reports everything; the exit status is non-zero when any part failed.
set -uo pipefail

: "${CACHE_DIR:?run through make test}"
# MOLECULE_SCENARIOS runs a subset, e.g. MOLECULE_SCENARIOS=remote.
scenarios=${MOLECULE_SCENARIOS:-smoke default docker_engine remote fleet}
# Scenarios that run alongside lint and the other scenarios rather than after them. The fleet
# scenario spends much of its time waiting on its stores (health gates, a release that never
# loads), time in which the others use the CPU. MOLECULE_BACKGROUND= runs everything in turn.
background=${MOLECULE_BACKGROUND-fleet}
# pytest-xdist workers (the tests of one file stay on one worker: tests/conftest.py); 0 runs
# pytest in one process.
workers=${PYTEST_WORKERS:-2}
failed=()
# Each part's output is kept as well as shown: CI shows only the end of a run, so the end
# repeats the lines that say why a failed part failed.
logs=$CACHE_DIR/test-logs
mkdir -p "$logs"

# Free space where the parts write (the checkout's cache and Docker's storage): a part that
# fails on a full disk then says so at a glance.
free_space() {
  local docker_root
  docker_root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /)
  df -h --output=avail,target "$CACHE_DIR" "$docker_root" | tail -n +2 | sort -u \
    | awk '{printf "%s%s free in %s", sep, $1, $2; sep="; "} END {print ""}'
}

step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $name (disk: $(free_space))"
  "$@" 2>&1 | tee "$logs/${name// /-}.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s (disk: $(free_space))"
  return $rc
}

# pytest's assertion lines and summary, Ansible's failed tasks and assertions, ansible-lint's
# and ansible-test's findings: at most 100 lines a part.
why_failed() {
  local name=$1 log=$logs/${1// /-}.log
  echo "=== why $name failed (from $log)"
  {
    grep -E '^E  ' "$log" | head -30
    sed -n '/short test summary info/,$p' "$log"
    grep -E -m5 'No space left on device' "$log"
    grep -E -A8 'fatal: \[|FAILED! =>' "$log"
    [ "$name" != lint ] || grep -E '^(ERROR|[a-z_./-]+\.(yml|yaml|py|txt):[0-9]+)' "$log" | head -30
  } | cut -c1-300 | head -100
}

# The images that the part left behind untagged (a rebuild moved the tag), of this project's
# builds only (their label): gigabytes that the next part needs on a small disk.
drop_stale_images() {
  docker image prune -f --filter label=org.edge-retail.inputs-sha256 >/dev/null 2>&1 || true
}

run_pytest() {
  # A passed test's tmp_path goes at its end (image archives of hundreds of MB among them);
  # a failed test's stays for its post-mortem.
  local parallel=()
  [ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadfile)
  pytest -p no:cacheprovider -ra -o tmp_path_retention_policy=failed --durations=30 \
    "${parallel[@]}" tests "$@"
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

# A scenario run in the background keeps its output in its log until it ends, then shows it
# whole: two scenarios writing to the terminal at once would interleave line by line.
run_background() {
  local s=$1 out=$logs/molecule-$1.out
  ( step "molecule $s" molecule test -s "$s" >"$out" 2>&1; echo $? >"$out.rc" ) &
  bg_pids+=("$!")
  bg_names+=("$s")
  echo "=== molecule $s: started in the background, its output follows when it ends"
}

wait_background() {
  local i s out
  for i in "${!bg_pids[@]}"; do
    s=${bg_names[$i]} out=$logs/molecule-${bg_names[$i]}.out
    wait "${bg_pids[$i]}"
    cat "$out"
    [ "$(cat "$out.rc" 2>/dev/null)" = 0 ] || failed+=("molecule:$s")
  done
}

step pytest run_pytest || failed+=(pytest)
drop_stale_images
bg_pids=() bg_names=() foreground=()
for s in $scenarios; do
  if [[ " $background " == *" $s "* ]]; then run_background "$s"; else foreground+=("$s"); fi
done
step lint run_lint || failed+=(lint)
for s in "${foreground[@]}"; do
  step "molecule $s" molecule test -s "$s" || failed+=("molecule:$s")
  drop_stale_images
done
wait_background
drop_stale_images

if [ ${#failed[@]} -gt 0 ]; then
  for name in "${failed[@]}"; do
    why_failed "${name/molecule:/molecule }"
  done
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test parts passed"
