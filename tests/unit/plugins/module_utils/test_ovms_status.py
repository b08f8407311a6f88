"""Status rules, the models option, failure messages and the wait loop (no network)."""
from __future__ import annotations

import pytest
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    InvalidModelList,
    ModelRequest,
    ModelStatus,
    ServerUnreachable,
    VersionStatus,
    WaitResult,
    parse_models,
    parse_tfs_status,
    wait_for_models,
)

AVAILABLE = VersionStatus(1, "AVAILABLE", 0, "OK")
NAME_MISSING = "Model with requested name is not found"


class TestParseModels:
    def test_names_and_dicts_become_requests(self) -> None:
        assert parse_models(["a", {"name": "b"}, {"name": "c", "version": "3"}]) == [
            ModelRequest("a"), ModelRequest("b"), ModelRequest("c", 3)]

    @pytest.mark.parametrize(("items", "expected"), [
        ([{"version": 1}], r"models\[0\].*missing required arguments: name"),
        ([{"name": "a", "versoin": 1}], r"models\[0\] has unknown key\(s\) versoin; expected"),
        ([{"name": "a", "version": True}], r"models\[0\] version is True; expected a positive"),
        (["a", {"name": "b", "version": "two"}], r"models\[1\].*version.*int"),
        ([["a"]], r"models\[0\] is \['a'\]; expected a model name or a dict"),
        ([{"name": "a", "version": 0}], r"models\[0\] version is 0; expected a positive"),
        ([""], r"models\[0\] has an empty name"),
        (["a", {"name": "a"}], r"models lists a/None more than once"),
    ])
    def test_bad_entries_are_named(self, items: list, expected: str) -> None:
        with pytest.raises(InvalidModelList, match=expected):
            parse_models(items)


class TestAvailability:
    def test_tfs_answer_is_read_per_version(self) -> None:
        status = parse_tfs_status(ModelRequest("m"), {
            2: {"state": "LOADING", "error_code": 2, "error_message": "UNKNOWN"},
            1: {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"},
        })
        assert status.versions == (AVAILABLE, VersionStatus(2, "LOADING", 2, "UNKNOWN"))
        assert status.as_dict()["versions"][1] == {
            "version": 2, "state": "LOADING", "error_code": 2, "error_message": "UNKNOWN"}

    def test_retired_versions_do_not_count_against_a_model(self) -> None:
        status = ModelStatus(ModelRequest("m"),
                             (VersionStatus(1, "END"), VersionStatus(2, "AVAILABLE")))
        assert status.available

    def test_a_failed_newer_version_fails_the_model_even_if_an_older_one_serves(self) -> None:
        status = ModelStatus(ModelRequest("m"),
                             (AVAILABLE, VersionStatus(2, "LOADING", 2, "UNKNOWN")))
        assert not status.available
        assert status.describe_problem() == "'m': version 2 is LOADING (error 2: UNKNOWN)"

    def test_only_retired_versions_is_not_available(self) -> None:
        status = ModelStatus(ModelRequest("m"), (VersionStatus(1, "END"),))
        assert not status.available
        assert "no version is AVAILABLE" in status.describe_problem()

    def test_a_pinned_version_ignores_the_others(self) -> None:
        versions = (AVAILABLE, VersionStatus(2, "LOADING"))
        assert ModelStatus(ModelRequest("m", 1), versions).available
        assert not ModelStatus(ModelRequest("m", 2), versions).available
        missing = ModelStatus(ModelRequest("m", 3), versions)
        assert not missing.available
        assert missing.describe_problem() == "'m' version 3: the server reports no such version"

    def test_a_server_error_makes_the_model_unavailable(self) -> None:
        status = ModelStatus(ModelRequest("m"), error=f"NOT_FOUND: {NAME_MISSING}")
        assert not status.available
        assert status.as_dict() == {
            "name": "m", "requested_version": None, "available": False,
            "error": "NOT_FOUND: Model with requested name is not found", "versions": []}


def test_failure_message_lists_every_model_that_is_not_available() -> None:
    result = WaitResult((
        ModelStatus(ModelRequest("good"), (AVAILABLE,)),
        ModelStatus(ModelRequest("missing"), error=f"NOT_FOUND: {NAME_MISSING}"),
        ModelStatus(ModelRequest("broken", 1), (VersionStatus(1, "LOADING", 2, "UNKNOWN"),)),
    ), elapsed=60.04, unreachable=None)
    message = result.failure_message("10.0.0.5:9000", "tfs", 60)
    assert message.startswith("2 of 3 models on OVMS at 10.0.0.5:9000 (tfs API) were not "
                              "AVAILABLE after 60 s: ")
    assert "'missing': NOT_FOUND: Model with requested name is not found" in message
    assert "'broken' version 1: version 1 is LOADING (error 2: UNKNOWN)" in message
    assert "'good'" not in message


class ScriptedSource:
    """One round's answer: a {name: status} dict, or an exception to raise."""

    def __init__(self, answer: dict[str, ModelStatus] | Exception) -> None:
        self.answer = answer
        self.closed = False

    def check_server(self) -> None:
        if isinstance(self.answer, Exception):
            raise self.answer

    def model_status(self, model: ModelRequest) -> ModelStatus:
        assert isinstance(self.answer, dict)
        return self.answer[model.name]

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _wait(rounds: list, timeout: float,
          interval: float = 1.0) -> tuple[WaitResult, FakeClock, list[float]]:
    clock, opened, sources = FakeClock(), [], []

    def open_source(rpc_timeout: float) -> ScriptedSource:
        opened.append(rpc_timeout)
        sources.append(ScriptedSource(rounds.pop(0)))
        return sources[-1]

    result = wait_for_models(open_source, [ModelRequest("m")], timeout, interval,
                             clock=clock, sleep=clock.sleep)
    assert all(source.closed for source in sources)
    return result, clock, opened


def test_waits_through_an_unreachable_server_and_a_loading_model() -> None:
    loading = {"m": ModelStatus(ModelRequest("m"), (VersionStatus(1, "LOADING"),))}
    ready = {"m": ModelStatus(ModelRequest("m"), (AVAILABLE,))}
    result, clock, opened = _wait([ServerUnreachable("refused"), loading, ready], timeout=30)
    assert result.ok
    assert result.statuses == (ready["m"],)
    assert clock.sleeps == [1.0, 1.0]
    assert result.elapsed == 2.0
    assert opened == [10.0, 10.0, 10.0]


def test_gives_up_at_the_deadline_with_the_last_answer() -> None:
    loading = {"m": ModelStatus(ModelRequest("m"), (VersionStatus(1, "LOADING"),))}
    result, clock, opened = _wait([loading] * 10, timeout=2.5)
    assert not result.ok
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert result.elapsed == 2.5
    # Each request may take at most what is left of the timeout, and at least a second.
    assert opened == [2.5, 1.5, 1.0, 1.0]


def test_reports_the_connection_error_when_the_server_never_answers() -> None:
    result, _clock, _opened = _wait([ServerUnreachable("refused")] * 10, timeout=1)
    assert not result.ok and result.statuses == ()
    assert result.failure_message("h:1", "kserve", 1) == (
        "Could not query OVMS at h:1 over the kserve gRPC API within 1 s: refused")


def test_timeout_zero_asks_once() -> None:
    loading = {"m": ModelStatus(ModelRequest("m"), (VersionStatus(1, "LOADING"),))}
    result, clock, opened = _wait([loading] * 3, timeout=0)
    assert not result.ok
    assert clock.sleeps == [] and len(opened) == 1
