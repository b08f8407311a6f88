"""Bad rollout settings make `playbooks/rollout.yml` fail in its first play (the plan), before
any host is validated or changed, with a message naming the variable. Each case runs the real
playbook in check mode against this machine through the local connection."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_site_bad_input import changed_tasks, failures, inventory, run_check


def run_rollout(tmp_path: Path, inv: dict[str, Any]) -> dict[str, Any]:
    return run_check(tmp_path, inv, "rollout.yml")


def two_stores(**overrides: Any) -> dict[str, Any]:
    inv = inventory(["store1"], ["store1", "till2"], **overrides)
    inv["all"]["children"]["north"] = {"hosts": {"store1": None}, "vars": {"ovms_store": "north"}}
    inv["all"]["children"]["south"] = {"hosts": {"till2": None}, "vars": {"ovms_store": "south"}}
    return inv


CASES = {
    "no batches": (
        inventory(["store1"], ["store1"], ovms_rollout_batches=[]),
        "ovms_rollout_batches",
    ),
    "a percentage over 100": (
        inventory(["store1"], ["store1"], ovms_rollout_batches=[1, "150%"]),
        'ovms_rollout_batches[1] is "150%"',
    ),
    "a batch of no stores": (
        inventory(["store1"], ["store1"], ovms_rollout_batches=[0]),
        "ovms_rollout_batches[0]",
    ),
    "a negative threshold": (
        inventory(["store1"], ["store1"], ovms_rollout_max_failed_percent=-5),
        "ovms_rollout_max_failed_percent",
    ),
    "a negative min_done": (
        inventory(["store1"], ["store1"], ovms_rollout_min_done=-1),
        "ovms_rollout_min_done",
    ),
    "a pause that is not a number": (
        inventory(["store1"], ["store1"], ovms_rollout_pause_seconds="soon"),
        'ovms_rollout_pause_seconds is "soon"',
    ),
    "a store with no server": (
        two_stores(),
        'store "south" (till2) has no host in ovms_servers',
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_rollout_settings_fail_in_the_plan_before_any_change(case: str, tmp_path: Path) -> None:
    inv, expected = CASES[case]
    result = run_rollout(tmp_path, inv)
    failed = failures(result)
    assert failed, f"no task failed: {json.dumps(result['stats'])}"
    play_index, task, message = failed[0]
    assert play_index == 0, f"first failure in play {play_index} ({task}): {message}"
    assert expected in message, f"{task}: {message}"
    assert changed_tasks(result) == []
