"""The staged rollout filters: batches from a serial-like list, and the stop verdict."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.edge_retail.ovms.plugins.filter import rollout
from ansible_collections.edge_retail.ovms.plugins.filter.rollout import (
    FilterModule,
    rollout_batches,
    rollout_verdict,
)


def stores(count: int) -> list[str]:
    return [f"s{number}" for number in range(1, count + 1)]


def sizes(batches: list[list[str]]) -> list[int]:
    return [len(batch) for batch in batches]


# rollout_batches -----------------------------------------------------------------------------

def test_counts_and_percentages_split_stores_in_order() -> None:
    assert rollout_batches(stores(4), [1, "50%", "100%"]) == [["s1"], ["s2", "s3"], ["s4"]]


@pytest.mark.parametrize(("total", "batches", "expected"), [
    (10, [1], [1] * 10),
    (10, [3], [3, 3, 3, 1]),                  # the last entry repeats; the last batch is capped
    (10, [1, 2], [1, 2, 2, 2, 2, 1]),
    (10, ["2"], [2] * 5),                     # a count given as a string of digits
    (10, [" 4 "], [4, 4, 2]),
    (10, ["100%"], [10]),
    (10, ["25%"], [3, 3, 3, 1]),              # 2.5 stores round up to 3
    (30, ["10%"], [3] * 10),                  # exactly 3, not 3.0000000000000004 rounded up
    (10, ["12.5%"], [2] * 5),                 # decimals allowed: 1.25 rounds up to 2
    (10, ["0.1%"], [1] * 10),                 # at least one store
    (3, [1, "100%", 5], [1, 2]),              # entries left once every store has a batch
    (4, [10], [4]),                           # a batch never holds more stores than exist
    (1, [1, "50%", "100%"], [1]),
    (5, [1, "40%"], [1, 2, 2]),               # percentages are of all stores, not of the rest
])
def test_batch_sizes(total: int, batches: list[Any], expected: list[int]) -> None:
    result = rollout_batches(stores(total), batches)
    assert sizes(result) == expected
    assert [store for batch in result for store in batch] == stores(total)


def test_an_empty_store_name_is_a_store() -> None:
    # The hosts without a store name make up one store.
    assert rollout_batches(["", "s1"], [1]) == [[""], ["s1"]]


def test_tuples_are_lists_too() -> None:
    assert rollout_batches(("a", "b"), (1,)) == [["a"], ["b"]]


@pytest.mark.parametrize(("batches", "expected"), [
    ([], ('ovms_rollout_batches is an empty list; expected at least one batch size, each a '
          'number of stores of at least 1 or a percentage string like "25%", for example '
          '[1, "10%", "100%"]')),
    ("50%", ('ovms_rollout_batches is "50%", a string; expected a list of batch sizes, each a '
             'number of stores of at least 1 or a percentage string like "25%"')),
    (3, "ovms_rollout_batches is 3, an integer; expected a list of batch sizes"),
    (None, "ovms_rollout_batches is null; expected a list of batch sizes"),
    ([1, 0], ('ovms_rollout_batches[1] is 0; expected a number of stores of at least 1 or a '
              'percentage string like "25%"')),
    ([-2], "ovms_rollout_batches[0] is -2; expected a number of stores of at least 1"),
    (["1", "0"], 'ovms_rollout_batches[1] is "0"; expected a number of stores of at least 1'),
    ([1, True], ("ovms_rollout_batches[1] is true, a boolean; expected a number of stores of at "
                 "least 1")),
    ([False], "ovms_rollout_batches[0] is false, a boolean; expected"),
    ([1, 2.5], ('ovms_rollout_batches[1] is 2.5, a float; expected a whole number of stores of '
                'at least 1 or a percentage string like "12.5%"')),
    ([2.0], "ovms_rollout_batches[0] is 2.0, a float; expected a whole number"),
    ([1, "50%", "150%"], ('ovms_rollout_batches[2] is "150%"; expected a percentage above 0% and '
                          'at most 100% of the stores')),
    (["0%"], 'ovms_rollout_batches[0] is "0%"; expected a percentage above 0% and at most 100%'),
    (["0.0%"], 'ovms_rollout_batches[0] is "0.0%"; expected a percentage above 0%'),
    (["abc"], ('ovms_rollout_batches[0] is "abc"; expected a number of stores of at least 1 or '
               'a percentage string like "25%"')),
    ([1, "-5%"], 'ovms_rollout_batches[1] is "-5%"; expected a number of stores'),
    (["50 percent"], 'ovms_rollout_batches[0] is "50 percent"; expected'),
    ([1, None], "ovms_rollout_batches[1] is null; expected a number of stores"),
    ([{"size": 1}], "ovms_rollout_batches[0] is {'size': 1}, a dict; expected"),
])
def test_bad_batches_name_the_variable_the_entry_and_what_was_expected(
        batches: Any, expected: str) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        rollout_batches(stores(4), batches)
    assert expected in str(raised.value)


def test_bad_entries_are_found_after_the_stores_run_out() -> None:
    with pytest.raises(AnsibleFilterError, match=r'ovms_rollout_batches\[2\] is "abc"'):
        rollout_batches(stores(1), [1, 1, "abc"])


def test_errors_name_the_variable_given() -> None:
    with pytest.raises(AnsibleFilterError, match=r'^site_waves\[0\] is "150%"'):
        rollout_batches(stores(2), ["150%"], variable="site_waves")
    with pytest.raises(AnsibleFilterError, match=r"^site_waves is an empty list"):
        rollout_batches(stores(2), [], variable="site_waves")


@pytest.mark.parametrize(("store_list", "expected"), [
    ([], ("the list of stores to split into ovms_rollout_batches is empty; expected at least one "
          "store name")),
    ("s1", ('the stores to split into ovms_rollout_batches are "s1", a string; expected a list '
            "of store names")),
    (["s1", 5], ("store 1 of the stores to split into ovms_rollout_batches is 5, an integer; "
                 "expected a store name string")),
    (["s1", None], "store 1 of the stores to split into ovms_rollout_batches is null"),
    (["", "s1", ""], 'store "" is listed more than once'),
    (["s1", "s2", "s1"], ('store "s1" is listed more than once in the stores to split into '
                          "ovms_rollout_batches; expected each store once")),
])
def test_bad_store_lists_are_refused(store_list: Any, expected: str) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        rollout_batches(store_list, [1])
    assert expected in str(raised.value)


# rollout_verdict ------------------------------------------------------------------------------

def test_verdict_stops_above_the_threshold() -> None:
    verdict = rollout_verdict(["updated", "rolled_back", "failed"], 1, 0)
    assert verdict == {
        "stop": True, "done": 3, "failed": 2, "failed_percent": 66.67,
        "reason": "2 of 3 finished stores failed or rolled back (66.7 %), above "
                  "ovms_rollout_max_failed_percent 0; stopping before the next batch",
    }


@pytest.mark.parametrize("outcome", ["failed", "rolled_back", "failed_rollback"])
def test_each_failed_outcome_counts_as_failed(outcome: str) -> None:
    verdict = rollout_verdict(["updated", outcome], 0, 0)
    assert (verdict["failed"], verdict["stop"]) == (1, True)


@pytest.mark.parametrize("outcome", ["updated", "unchanged"])
def test_success_outcomes_do_not_count_as_failed(outcome: str) -> None:
    verdict = rollout_verdict([outcome, outcome], 0, 0)
    assert verdict == {
        "stop": False, "done": 2, "failed": 0, "failed_percent": 0.0,
        "reason": "0 of 2 finished stores failed or rolled back (0.0 %), within "
                  "ovms_rollout_max_failed_percent 0; the rollout goes on",
    }


def test_not_started_stores_are_ignored() -> None:
    verdict = rollout_verdict(["failed", "not_started", "not_started", "updated"], 2, 50)
    assert (verdict["done"], verdict["failed"], verdict["failed_percent"]) == (2, 1, 50.0)
    assert verdict["stop"] is False      # 50 % is not above 50 %


def test_nothing_finished_goes_on() -> None:
    assert rollout_verdict(["not_started"], 0, 0) == {
        "stop": False, "done": 0, "failed": 0, "failed_percent": 0.0,
        "reason": "no store has finished yet; the rollout goes on"}
    assert rollout_verdict([], 0, 0)["stop"] is False


def test_too_few_finished_stores_cannot_stop_the_rollout() -> None:
    verdict = rollout_verdict(["failed"], 3, 0)
    assert verdict["stop"] is False
    assert verdict["reason"] == (
        "1 of 1 finished store failed or rolled back (100.0 %), above "
        "ovms_rollout_max_failed_percent 0, but fewer stores finished than "
        "ovms_rollout_min_done 3; the rollout goes on")
    assert rollout_verdict(["failed", "updated", "updated"], 3, 0)["stop"] is True


@pytest.mark.parametrize(("failed", "done", "threshold", "stop"), [
    (1, 3, 33.3, True),
    (1, 3, "33.34", False),
    (1, 4, 25, False),         # exactly at the threshold goes on
    (1, 4, 24.99, True),
    (10, 10, 100, False),      # 100 % never stops
    (1, 8, 12.5, False),
])
def test_threshold_is_compared_exactly(failed: int, done: int, threshold: Any,
                                       stop: bool) -> None:
    outcomes = ["failed"] * failed + ["updated"] * (done - failed)
    assert rollout_verdict(outcomes, 0, threshold)["stop"] is stop


def test_reason_shows_decimal_thresholds_and_a_custom_prefix() -> None:
    verdict = rollout_verdict(["failed", "updated", "updated"], "2", "12.5", "site")
    assert verdict["reason"] == ("1 of 3 finished stores failed or rolled back (33.3 %), above "
                                 "site_max_failed_percent 12.5; stopping before the next batch")


@pytest.mark.parametrize(("min_done", "max_failed", "expected"), [
    (-1, 10, "ovms_rollout_min_done is -1; expected a whole number of stores, 0 or more"),
    (1.5, 10, "ovms_rollout_min_done is 1.5; expected a whole number"),
    (True, 10, "ovms_rollout_min_done is true; expected a whole number"),
    ("two", 10, 'ovms_rollout_min_done is "two"; expected a whole number'),
    (None, 10, "ovms_rollout_min_done is null; expected a whole number"),
    (1, 101, ("ovms_rollout_max_failed_percent is 101; expected a percentage of finished stores "
              "from 0 to 100, without a % sign")),
    (1, -1, "ovms_rollout_max_failed_percent is -1; expected a percentage"),
    (1, "10%", 'ovms_rollout_max_failed_percent is "10%"; expected a percentage'),
    (1, False, "ovms_rollout_max_failed_percent is false; expected a percentage"),
    (1, float("nan"), "ovms_rollout_max_failed_percent is nan; expected a percentage"),
    (1, None, "ovms_rollout_max_failed_percent is null; expected a percentage"),
])
def test_bad_settings_name_the_variable(min_done: Any, max_failed: Any, expected: str) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        rollout_verdict(["updated"], min_done, max_failed)
    assert str(raised.value).startswith(expected)


def test_bad_settings_use_the_prefix() -> None:
    with pytest.raises(AnsibleFilterError, match="^site_min_done is -1"):
        rollout_verdict([], -1, 0, variable_prefix="site")
    with pytest.raises(AnsibleFilterError, match="^site_max_failed_percent is 200"):
        rollout_verdict([], 0, 200, variable_prefix="site")


@pytest.mark.parametrize(("outcomes", "expected"), [
    (["updated", "done"], ('store outcome 1 given to rollout_verdict is "done"; expected one of '
                           "updated, unchanged, rolled_back, failed_rollback, failed, "
                           "not_started")),
    ([None], "store outcome 0 given to rollout_verdict is null; expected one of"),
    ("failed", ('the store outcomes given to rollout_verdict are "failed", a string; expected '
                "a list of outcomes")),
])
def test_unknown_outcomes_are_refused(outcomes: Any, expected: str) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        rollout_verdict(outcomes, 0, 0)
    assert expected in str(raised.value)


def test_filter_module_exports_both_filters() -> None:
    assert FilterModule().filters() == {"rollout_batches": rollout_batches,
                                        "rollout_verdict": rollout_verdict}


def test_outcomes_match_the_documentation() -> None:
    docs = Path(rollout.__file__).with_name("rollout_verdict.yml").read_text()
    for outcome in rollout.OUTCOMES:
        assert f"V({outcome})" in docs


# Through Ansible: templated values (tagged strings, lazy lists, extra vars as strings) -------

def _collections_dir() -> Path:
    # .../ansible_collections/edge_retail/ovms/plugins/filter/rollout.py
    return Path(rollout.__file__).parents[5]


def _playbook(tmp_path: Path, tasks: list[dict[str, Any]],
              *extra_vars: str) -> subprocess.CompletedProcess[str]:
    playbook_command = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if playbook_command is None:
        pytest.skip("ansible-playbook is not installed beside this Python")
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "tasks": tasks}]))
    command = [playbook_command, "-i", "localhost,", "-c", "local", str(playbook)]
    for extra in extra_vars:
        command += ["-e", extra]
    env = {"ANSIBLE_COLLECTIONS_PATH": str(_collections_dir()), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _task_results(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    output = json.loads(done.stdout)
    return [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]]


def test_filters_work_on_templated_values(tmp_path: Path) -> None:
    tasks = [
        {"ansible.builtin.debug": {"msg": "{{ stores | edge_retail.ovms.rollout_batches("
                                          "batches) }}"}},
        {"ansible.builtin.debug": {"msg": "{{ outcomes | edge_retail.ovms.rollout_verdict("
                                          "ovms_rollout_min_done, "
                                          "ovms_rollout_max_failed_percent) }}"}},
    ]
    lists = json.dumps({"stores": ["s1", "s2", "s3", "s4"], "batches": [1, "50%", "100%"],
                        "outcomes": ["updated", "rolled_back", "failed", "not_started"]})
    # key=value extra vars are strings
    numbers = "ovms_rollout_min_done=1 ovms_rollout_max_failed_percent=0"
    done = _playbook(tmp_path, tasks, lists, numbers)
    assert done.returncode == 0, done.stdout + done.stderr
    batches, verdict = (result["msg"] for result in _task_results(done))
    assert batches == [["s1"], ["s2", "s3"], ["s4"]]
    assert verdict["stop"] is True
    assert verdict["reason"].startswith("2 of 3 finished stores failed or rolled back (66.7 %)")


def test_filter_errors_reach_the_play(tmp_path: Path) -> None:
    done = _playbook(tmp_path, [
        {"ansible.builtin.debug": {"msg": "{{ ['s1'] | edge_retail.ovms.rollout_batches("
                                          "ovms_rollout_batches) }}"}},
    ], json.dumps({"ovms_rollout_batches": [1, "150%"]}))
    assert done.returncode != 0
    message = _task_results(done)[0]["msg"]
    assert 'ovms_rollout_batches[1] is "150%"; expected a percentage above 0% and at most 100%' \
        in message
