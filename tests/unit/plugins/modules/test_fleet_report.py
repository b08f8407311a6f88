"""fleet_report: host records grouped by store, written as JSON and one HTML page."""
from __future__ import annotations

import json
import os
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.modules import fleet_report

IMAGE_NEW = "sha256:7b33650419f6b68ad51784d1935c0c7e6dda53ab04010e059ceee7d3ed77b60f"
IMAGE_OLD = "sha256:318b58af6634bdbbf62e6addd5e264a9d8874428c80f8d9d3ba9645bb2715f83"
MODELS = [{"name": "person-detection", "version": 1, "state": "AVAILABLE"}]
SETTINGS = {"batches": [1, "50%", "100%"], "min_done": 1, "max_failed_percent": 20}
OUTCOMES = ["updated", "unchanged", "rolled_back", "failed_rollback", "failed", "not_started"]


def release(release_id: str) -> dict[str, Any]:
    return {"id": release_id, "ovms_image": "openvino/model_server", "recorded": 1.0}


def records() -> list[dict[str, Any]]:
    """Four stores: a two-host store whose client failed, a single-system store, a store
    rolled back, and a store never started; the hosts of store-a are not adjacent."""
    return [
        {"host": "a-server", "store": "store-a", "outcome": "updated", "batch": 1,
         "release_before": release("r1"), "release_after": release("r2"),
         "ovms_image_id": IMAGE_NEW, "models": MODELS, "started": 1000.0, "finished": 1060.0},
        {"host": "b-single", "store": "store-b", "outcome": "unchanged", "batch": 2,
         "release_before": release("r2"), "release_after": release("r2"),
         "ovms_image_id": IMAGE_NEW, "models": MODELS, "client_fps": 14.84,
         "started": "1100", "finished": "1105.5"},
        {"host": "a-cam1", "store": "store-a", "outcome": "failed", "batch": 1,
         "client_fps": None, "started": 1010.0, "finished": 1090.0,
         "error": "client did not start"},
        {"host": "a-cam2", "store": "store-a", "outcome": "updated", "batch": 1,
         "release_before": release("c1"), "release_after": release("c2"),
         "client_fps": 9.5, "error": ""},
        {"host": "c-server", "store": "store-c", "outcome": "rolled_back", "batch": 2,
         "release_before": None, "release_after": release("r1"), "ovms_image_id": IMAGE_OLD,
         "models": [{"name": "person-detection", "version": 2, "state": "LOADING"}],
         "error": "OVMS did not serve <script>alert(1)</script> & more"},
        {"host": "c-cam", "store": "store-c", "outcome": "unchanged", "batch": 2,
         "release_before": release("cc1"), "client_fps": 3},
        {"host": "d-server", "store": "store-d", "outcome": "not_started"},
    ]


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        fleet_report.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


def paths(tmp_path: Path) -> dict[str, str]:
    return {"json_path": str(tmp_path / "reports" / "run-1" / "fleet.json"),
            "html_path": str(tmp_path / "reports" / "run-1" / "fleet.html")}


def report(capsys: pytest.CaptureFixture[str], tmp_path: Path,
           **args: Any) -> dict[str, Any]:
    args = {"records": records(), "title": "OVMS 2026.4.1 rollout", "settings": SETTINGS,
            **paths(tmp_path), **args}
    result = run(capsys, **args)
    assert not result.get("failed"), result["msg"]
    return result


def by_store(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {store["store"]: store for store in result["stores"]}


# Grouping -------------------------------------------------------------------------------------

def test_stores_in_order_of_first_appearance_with_their_hosts(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = report(capsys, tmp_path)
    assert [(s["store"], s["hosts"]) for s in result["stores"]] == [
        ("store-a", ["a-server", "a-cam1", "a-cam2"]),
        ("store-b", ["b-single"]),
        ("store-c", ["c-server", "c-cam"]),
        ("store-d", ["d-server"]),
    ]


def test_grouped_store_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stores = by_store(report(capsys, tmp_path))
    assert stores["store-a"] == {
        "store": "store-a", "outcome": "failed", "hosts": ["a-server", "a-cam1", "a-cam2"],
        "batch": 1,
        # the server's releases win over the client's
        "release_before": "r1", "release_after": "r2",
        "ovms_image_id": IMAGE_NEW, "models": MODELS,
        "client_fps": {"a-cam2": 9.5},             # a-cam1 measured nothing
        "duration_s": 90.0,
        "error": "a-cam1: client did not start",
    }
    assert stores["store-b"]["client_fps"] == {"b-single": 14.84}
    assert stores["store-b"]["duration_s"] == 5.5          # numeric strings are accepted
    # the server has no release before, so the first host that has one gives it
    assert (stores["store-c"]["release_before"], stores["store-c"]["release_after"]) == (
        "cc1", "r1")
    assert stores["store-c"]["models"] == [
        {"name": "person-detection", "version": 2, "state": "LOADING"}]
    assert stores["store-c"]["client_fps"] == {"c-cam": 3.0}
    assert stores["store-d"] == {
        "store": "store-d", "outcome": "not_started", "hosts": ["d-server"], "batch": None,
        "release_before": None, "release_after": None, "ovms_image_id": None, "models": [],
        "client_fps": {}, "duration_s": None, "error": ""}


def test_hosts_without_a_store_name_are_one_store(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    rows = [{"host": "h1", "store": "", "outcome": "updated"},
            {"host": "h2", "store": "s", "outcome": "updated"},
            {"host": "h3", "store": "", "outcome": "failed"}]
    result = report(capsys, tmp_path, records=rows)
    assert [(s["store"], s["hosts"], s["outcome"]) for s in result["stores"]] == [
        ("", ["h1", "h3"], "failed"), ("s", ["h2"], "updated")]
    assert "<td><em>(no store name)</em></td>" in Path(result["html_path"]).read_text()


def test_long_release_ids_are_shortened_in_html(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    digest = "3f" * 32
    rows = [{"host": "h", "store": "s", "outcome": "updated", "release_before": None,
             "release_after": {"id": digest}}]
    result = report(capsys, tmp_path, records=rows)
    assert result["stores"][0]["release_after"] == digest
    page = Path(result["html_path"]).read_text()
    assert f'<td>none &rarr; <code title="{digest}">{digest[:12]}</code></td>' in page


def test_errors_of_every_host_are_joined(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    rows = [{"host": "h1", "store": "s", "outcome": "failed", "error": "first\n"},
            {"host": "h2", "store": "s", "outcome": "updated", "error": None},
            {"host": "h3", "store": "s", "outcome": "failed", "error": "third"}]
    store = report(capsys, tmp_path, records=rows)["stores"][0]
    assert store["error"] == "h1: first\nh3: third"


# The worst outcome, pairwise: each outcome beats every one after it.
@pytest.mark.parametrize(("worse", "better"), [
    (worse, better)
    for index, worse in enumerate(fleet_report.SEVERITY)
    for better in fleet_report.SEVERITY[index + 1:]
])
def test_store_outcome_is_the_worst_of_its_hosts(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, worse: str, better: str) -> None:
    rows = [{"host": "h1", "store": "s", "outcome": better},
            {"host": "h2", "store": "s", "outcome": worse},
            {"host": "h3", "store": "s", "outcome": better}]
    assert report(capsys, tmp_path, records=rows)["stores"][0]["outcome"] == worse


def test_severity_order_is_the_documented_one() -> None:
    assert fleet_report.SEVERITY == (
        "failed_rollback", "failed", "rolled_back", "updated", "unchanged", "not_started")
    assert sorted(fleet_report.SEVERITY) == sorted(fleet_report.OUTCOMES)
    assert ("V(failed_rollback), V(failed), V(rolled_back), V(updated), V(unchanged), "
            "V(not_started)") in " ".join(fleet_report.DOCUMENTATION.split())


def test_counts_are_per_store_with_zeros(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    result = report(capsys, tmp_path)
    assert result["counts"] == {"updated": 0, "unchanged": 1, "rolled_back": 1,
                                "failed_rollback": 0, "failed": 1, "not_started": 1}
    assert list(result["counts"]) == OUTCOMES


def test_no_records_make_an_empty_report(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    result = report(capsys, tmp_path, records=[])
    assert result["stores"] == []
    assert result["counts"] == dict.fromkeys(OUTCOMES, 0)
    assert "<h2>0 stores</h2>" in Path(result["html_path"]).read_text()


# Files ----------------------------------------------------------------------------------------

def test_json_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    before = datetime.now().timestamp()
    result = report(capsys, tmp_path, started=1000.5, finished=1200)
    assert result["changed"] is True
    assert result["json_path"] == paths(tmp_path)["json_path"]
    document = json.loads(Path(result["json_path"]).read_text())
    assert list(document) == ["title", "generated_at", "started", "finished", "settings",
                              "counts", "stores"]
    assert document["title"] == "OVMS 2026.4.1 rollout"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["generated_at"])
    generated = datetime.strptime(document["generated_at"] + "+0000", "%Y-%m-%dT%H:%M:%SZ%z")
    assert before - 1 <= generated.timestamp() <= datetime.now().timestamp()
    assert document["generated_at"] == result["generated_at"]
    assert (document["started"], document["finished"]) == (
        "1970-01-01T00:16:40Z", "1970-01-01T00:20:00Z")
    assert document["settings"] == SETTINGS
    assert document["counts"] == result["counts"]
    assert document["stores"] == result["stores"]


def test_report_without_times_or_settings(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    result = run(capsys, records=records(), **paths(tmp_path))
    document = json.loads(Path(result["json_path"]).read_text())
    assert (document["title"], document["started"], document["finished"],
            document["settings"]) == ("OVMS rollout", None, None, {})
    assert "<p>None given.</p>" in Path(result["html_path"]).read_text()


def _html(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    result = report(capsys, tmp_path, started=1000.0, finished=1200.0)
    return Path(result["html_path"]).read_text()


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr class="[a-z_]+-row">.*?</tr>', page, flags=re.DOTALL)


def test_html_has_one_row_per_store(capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    rows = _rows(_html(capsys, tmp_path))
    assert len(rows) == 4
    assert [re.search(r"<td>(.*?)</td>", row).group(1) for row in rows] == [  # type: ignore
        "store-a", "store-b", "store-c", "store-d"]
    store_a = rows[0]
    assert '<span class="badge failed">failed</span>' in store_a
    assert "a-server<br>a-cam1<br>a-cam2" in store_a
    assert "r1 &rarr; r2" in store_a
    assert f'<code title="{IMAGE_NEW}">7b33650419f6</code>' in store_a
    assert "person-detection v1 AVAILABLE" in store_a
    assert "<td>a-cam2: 9.5</td>" in store_a
    assert ">1 min 30 s</td>" in store_a
    assert ">a-cam1: client did not start</td>" in store_a
    assert "b-single: 14.8" in rows[1]
    assert ">5.5 s</td>" in rows[1]
    assert "person-detection v2 LOADING" in rows[2]
    assert "cc1 &rarr; r1" in rows[2]
    assert '<span class="badge not_started">not_started</span>' in rows[3]


def test_html_header_settings_and_counts(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    page = _html(capsys, tmp_path)
    assert "<title>OVMS 2026.4.1 rollout</title>" in page
    assert "<h1>OVMS 2026.4.1 rollout</h1>" in page
    assert "started 1970-01-01T00:16:40Z; finished 1970-01-01T00:20:00Z" in page
    assert "<tr><th>batches</th><td>1, 50%, 100%</td></tr>" in page
    assert "<tr><th>max_failed_percent</th><td>20</td></tr>" in page
    assert "<h2>4 stores</h2>" in page
    for outcome, count in zip(OUTCOMES, [0, 1, 1, 0, 1, 1]):
        zero = " zero" if count == 0 else ""
        assert f'<span class="badge {outcome}{zero}">{outcome}: {count}</span>' in page


def test_html_is_self_contained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = _html(capsys, tmp_path).lower()
    assert "<style>" in page
    for external in ("<script", "<link", "src=", "href=", "http://", "https://", "@import"):
        assert external not in page


def test_html_escapes_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = records()
    rows[0]["store"] = rows[2]["store"] = rows[3]["store"] = 'store "a" <b>'
    result = report(capsys, tmp_path, records=rows, title="Rollout <i>1</i>",
                    settings={"note": "<img src=x>"})
    page = Path(result["html_path"]).read_text()
    assert "<script>" not in page
    assert ("c-server: OVMS did not serve &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"
            in page)
    assert "<td>store &quot;a&quot; &lt;b&gt;</td>" in page
    assert "<title>Rollout &lt;i&gt;1&lt;/i&gt;</title>" in page
    assert "<td>&lt;img src=x&gt;</td>" in page
    # the JSON keeps the text as it was
    document = json.loads(Path(result["json_path"]).read_text())
    assert "<script>alert(1)</script> & more" in document["stores"][2]["error"]


class _TagChecker(HTMLParser):
    """Checks that every element that needs an end tag is closed, in order."""

    VOID = frozenset({"meta", "br", "link", "img", "hr", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.rows = 0
        self.cells_per_row: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows += 1
            self.cells_per_row.append(0)
        if tag in ("td", "th") and self.cells_per_row:
            self.cells_per_row[-1] += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def test_html_is_well_formed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    page = _html(capsys, tmp_path)
    assert page.startswith("<!DOCTYPE html>\n")
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    # 3 settings rows, the heading row and 4 store rows, each store row with 10 cells
    assert checker.rows == 3 + 1 + 4
    assert checker.cells_per_row[-5:] == [10] * 5


def test_writes_are_atomic_and_leave_no_temporary_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "reports" / "run-1"
    first = report(capsys, tmp_path)
    json_inode = os.stat(first["json_path"]).st_ino
    os.chmod(first["json_path"], 0o640)

    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(source: str, target: str) -> None:
        replaced.append((source, target))
        assert Path(source).parent == Path(target).parent
        real_replace(source, target)

    monkeypatch.setattr(fleet_report.os, "replace", spy)
    second = report(capsys, tmp_path, title="second run")
    assert [pair[1] for pair in replaced] == [second["json_path"], second["html_path"]]
    assert sorted(p.name for p in directory.iterdir()) == ["fleet.html", "fleet.json"]
    # a new file took the old one's place, with the old one's mode
    assert os.stat(second["json_path"]).st_ino != json_inode
    assert os.stat(second["json_path"]).st_mode & 0o777 == 0o640
    assert json.loads(Path(second["json_path"]).read_text())["title"] == "second run"


def test_failed_write_keeps_the_old_report_and_no_temporary_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "reports" / "run-1"
    report(capsys, tmp_path, title="first run")

    def broken_replace(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fleet_report.os, "replace", broken_replace)
    result = run(capsys, records=records(), title="second run", **paths(tmp_path))
    assert result["failed"]
    assert result["msg"] == (f"Could not write the fleet report to {paths(tmp_path)['json_path']}"
                             ": [Errno 28] No space left on device")
    assert result["counts"]["failed"] == 1
    assert sorted(p.name for p in directory.iterdir()) == ["fleet.html", "fleet.json"]
    assert json.loads((directory / "fleet.json").read_text())["title"] == "first run"


def test_check_mode_returns_the_report_and_writes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result = report(capsys, tmp_path, _ansible_check_mode=True)
    assert result["changed"] is False
    assert result["counts"]["failed"] == 1
    assert len(result["stores"]) == 4
    assert not (tmp_path / "reports").exists()


def test_new_files_follow_the_umask(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        result = report(capsys, tmp_path)
    finally:
        os.umask(old)
    assert os.stat(result["html_path"]).st_mode & 0o777 == 0o640


# Bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("record", "expected"), [
    ({"store": "s", "outcome": "updated"},
     "records[0] has host None; expected a non-empty string"),
    ({"host": " ", "store": "s", "outcome": "updated"},
     "records[0] has host ' '; expected a non-empty string"),
    ({"host": "h", "outcome": "updated"},
     "records[0] (host h) has store None; expected a string"),
    ({"host": "h", "store": 42, "outcome": "updated"},
     "records[0] (host h) has store 42; expected a string"),
    ({"host": "h", "store": "s", "outcome": "done"},
     ("records[0] (host h) has outcome 'done'; expected one of updated, unchanged, rolled_back, "
      "failed_rollback, failed, not_started")),
    ({"host": "h", "store": "s", "outcome": "failed", "batch": "first"},
     "records[0] (host h) has batch 'first'; expected a whole number"),
    ({"host": "h", "store": "s", "outcome": "failed", "batch": True},
     "records[0] (host h) has batch True; expected a whole number"),
    ({"host": "h", "store": "s", "outcome": "failed", "release_before": {"image": "x"}},
     ("records[0] (host h) has release_before {'image': 'x'}; expected null or a release record "
      "(a dict) with a non-empty id")),
    ({"host": "h", "store": "s", "outcome": "failed", "release_after": "r2"},
     "records[0] (host h) has release_after 'r2'; expected null or a release record"),
    ({"host": "h", "store": "s", "outcome": "failed", "models": ["person-detection"]},
     ("records[0] (host h) has models ['person-detection']; expected a list of dicts, each with "
      "a name")),
    ({"host": "h", "store": "s", "outcome": "failed", "client_fps": "fast"},
     "records[0] (host h) has client_fps 'fast'; expected a number"),
    ({"host": "h", "store": "s", "outcome": "failed", "started": "yesterday"},
     "records[0] (host h) has started 'yesterday'; expected a number"),
    ({"host": "h", "store": "s", "outcome": "failed", "ovms_image_id": 12},
     "records[0] (host h) has ovms_image_id 12; expected a string"),
])
def test_bad_records_fail_naming_the_record(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, record: dict[str, Any],
        expected: str) -> None:
    result = run(capsys, records=[record], **paths(tmp_path))
    assert result["failed"]
    assert result["msg"].startswith(expected)
    assert not (tmp_path / "reports").exists()


def test_every_problem_is_reported_at_once(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    rows = [*records(), {"host": "x", "store": "s", "outcome": "bad"},
            {"host": "y", "store": "s", "outcome": "failed", "batch": -1}]
    path = str(tmp_path / "same")
    result = run(capsys, records=rows, json_path=path, html_path=path)
    assert result["msg"] == (
        "records[7] (host x) has outcome 'bad'; expected one of updated, unchanged, rolled_back,"
        " failed_rollback, failed, not_started; records[8] (host y) has batch -1; expected a "
        f"whole number; json_path and html_path are both {path}; expected two files")


def test_missing_required_options(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, records=[])
    assert result["failed"]
    assert "missing required arguments: html_path, json_path" in result["msg"]
