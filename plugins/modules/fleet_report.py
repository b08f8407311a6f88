#!/usr/bin/python
# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_report
short_description: Write the JSON and HTML fleet report of a staged OVMS rollout
description:
  - Takes one record per host of a staged rollout, groups them by store (stores, not hosts, are
    the unit of the rollout), and writes the result as a JSON file and as one self-contained
    HTML page (inline CSS, no scripts, no external links).
  - Each file is written atomically, through a temporary file in the same directory that
    replaces the target, so a reader never sees half a report. Missing parent directories are
    created.
  - "Runs on the controller: use C(delegate_to: localhost) and C(run_once: true)."
  - Fails at once, listing every problem, when a record is not shaped as described in
    O(records); nothing is written then.
version_added: 0.2.0
author:
  - edge_retail platform team (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check mode and return a status prediction without writing.
    support: full
    details:
      - In check mode the module builds the whole report and returns it, but writes no file
        and reports C(changed=false).
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - Running it again with the same options writes the same report, except for its
        generation time.
    support: none
    details:
      - The report holds the time it was generated, so every run rewrites both files and
        reports C(changed=true).
options:
  records:
    description:
      - One dict per host of the rollout. Keys other than C(host), C(store) and C(outcome) may
        be missing or V(null).
      - C(host) (str) is the inventory host name.
      - C(store) (str) is the store the host belongs to. An empty name is a store too, for
        example the hosts that have no store name.
      - C(outcome) (str) is what happened on the host, one of V(updated), V(unchanged),
        V(rolled_back), V(failed_rollback), V(failed) or V(not_started).
      - C(batch) (int) is the rollout batch of the host's store.
      - C(release_before) and C(release_after) (dict) are the release records on the host
        before and after the rollout, each with at least the key C(id).
      - C(ovms_image_id) (str) is the image ID of the OVMS container. Only a store's server host
        reports it, so the first record of a store that has it is the store's server host.
      - C(models) (list) are the models the server serves, each a dict with the key C(name) and
        optionally C(version) and C(state).
      - C(client_fps) (float) is the frame rate the inference client on the host measured, or
        V(null) when the host runs no client or measured nothing.
      - C(started) and C(finished) (float) are epoch seconds of the host's rollout steps.
        Numeric strings, such as C(ansible_date_time.epoch), are accepted too.
      - C(error) (str) is what went wrong on the host.
    type: list
    elements: dict
    required: true
  json_path:
    description: Path of the JSON report on the controller.
    type: path
    required: true
  html_path:
    description: Path of the HTML report on the controller. Must differ from O(json_path).
    type: path
    required: true
  title:
    description: Title of the report, for example the release being rolled out.
    type: str
    default: OVMS rollout
  settings:
    description:
      - The rollout's settings, shown in the report's header as given, for example
        C(batches), C(min_done) and C(max_failed_percent).
    type: dict
    default: {}
  started:
    description: Epoch seconds when the rollout started, shown in the report's header.
    type: float
  finished:
    description: Epoch seconds when the rollout finished, shown in the report's header.
    type: float
notes:
  - "A store's outcome is the worst outcome of its hosts, in this order from worst to best:
    V(failed_rollback), V(failed), V(rolled_back), V(updated), V(unchanged), V(not_started).
    So a store with one updated and one unchanged host is V(updated), and a store whose server
    was rolled back is V(rolled_back) even when its client hosts are unchanged."
  - The HTML report shows the OVMS image ID by its first 12 hex digits (without
    C(sha256:)), and the whole ID as a tooltip.
  - A store's release IDs, OVMS image ID and models come from its server host's record; a
    release ID the server host does not have is taken from the first of the store's hosts that
    has one.
  - The report counts stores, not hosts.
"""

EXAMPLES = r"""
- name: Write the fleet report of this rollout
  edge_retail.ovms.fleet_report:
    title: "OVMS 2026.4.1 rollout"
    records: "{{ ansible_play_hosts_all | map('extract', hostvars, 'ovms_rollout_record') }}"
    json_path: "{{ playbook_dir }}/reports/rollout-{{ ovms_rollout_id }}.json"
    html_path: "{{ playbook_dir }}/reports/rollout-{{ ovms_rollout_id }}.html"
    settings:
      batches: "{{ ovms_rollout_batches }}"
      min_done: "{{ ovms_rollout_min_done }}"
      max_failed_percent: "{{ ovms_rollout_max_failed_percent }}"
    started: "{{ ovms_rollout_started }}"
    finished: "{{ now(utc=true).timestamp() }}"
  delegate_to: localhost
  run_once: true
  register: fleet_report

- name: Show how many stores ended in each outcome
  ansible.builtin.debug:
    var: fleet_report.counts
  run_once: true
"""

RETURN = r"""
counts:
  description: Number of stores per outcome; every outcome is present, zeros included.
  returned: always
  type: dict
  sample:
    updated: 3
    unchanged: 1
    rolled_back: 1
    failed_rollback: 0
    failed: 0
    not_started: 2
stores:
  description: One entry per store, in the order the stores first appear in O(records).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: Store name.
      type: str
      sample: store-042
    outcome:
      description: The worst outcome of the store's hosts (see the notes).
      type: str
      sample: rolled_back
    hosts:
      description: The store's hosts, in record order.
      type: list
      elements: str
      sample: [store-042-server, store-042-cam1]
    batch:
      description: The store's rollout batch; V(null) when no record gave one.
      type: int
      sample: 2
    release_before:
      description:
        - ID of the release the store ran before the rollout, or V(null).
        - The HTML report shows IDs longer than 16 characters by their first 12, with the whole
          ID as the cell's tooltip.
      type: str
      sample: "2026.3-r7"
    release_after:
      description: ID of the release the store runs after the rollout, or V(null).
      type: str
      sample: "2026.4.1-r1"
    ovms_image_id:
      description: Image ID of the store's OVMS container, or V(null).
      type: str
      sample: sha256:7b33650419f6b68ad51784d1935c0c7e6dda53ab04010e059ceee7d3ed77b60f
    models:
      description: The models of the store's server, each with C(name), C(version), C(state).
      type: list
      elements: dict
      sample: [{name: person-detection, version: 1, state: AVAILABLE}]
    client_fps:
      description:
        - Frame rate per client host, host name to frames per second.
        - Hosts whose record has no C(client_fps), or V(null), are left out.
      type: dict
      sample: {store-042-cam1: 14.8}
    duration_s:
      description:
        - Seconds from the earliest C(started) to the latest C(finished) of the store's hosts,
          rounded to tenths; V(null) when either is missing.
      type: float
      sample: 84.2
    error:
      description: "Every non-empty error of the store's hosts as C(host: text), one a line."
      type: str
      sample: "store-042-server: OVMS did not serve every model"
json_path:
  description: The path of the JSON report.
  returned: always
  type: str
  sample: /srv/rollouts/reports/rollout-17.json
html_path:
  description: The path of the HTML report.
  returned: always
  type: str
  sample: /srv/rollouts/reports/rollout-17.html
generated_at:
  description: When the report was generated, ISO 8601 in UTC, as written in the JSON report.
  returned: always
  type: str
  sample: "2026-11-30T14:05:09Z"
"""

import html
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from typing import Any

from ansible.module_utils.basic import AnsibleModule

# datetime.UTC is Python 3.11+, and ansible-test compiles modules for older Pythons too.
_UTC = timezone.utc  # noqa: UP017

# Every outcome, in the order the report lists them.
OUTCOMES = ("updated", "unchanged", "rolled_back", "failed_rollback", "failed", "not_started")
# Worst first: a store's outcome is the first of these that any of its hosts has.
SEVERITY = ("failed_rollback", "failed", "rolled_back", "updated", "unchanged", "not_started")

ARGUMENT_SPEC = {
    "records": {"type": "list", "elements": "dict", "required": True},
    "json_path": {"type": "path", "required": True},
    "html_path": {"type": "path", "required": True},
    "title": {"type": "str", "default": "OVMS rollout"},
    "settings": {"type": "dict", "default": {}},
    "started": {"type": "float"},
    "finished": {"type": "float"},
}


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _release_id(value: Any) -> str | None:
    if isinstance(value, dict):
        release = value.get("id")
        if release is not None and not isinstance(release, bool) and str(release).strip():
            return str(release)
    return None


def _check_record(index: int, record: Any) -> tuple[list[str], dict[str, Any]]:
    """Problems with one record, and the record with its values normalised."""
    if not isinstance(record, dict):
        return [f"records[{index}] is not a dict; expected one with host, store and outcome"], {}
    host = record.get("host")
    named = isinstance(host, str) and host.strip()
    where = f"records[{index}]" + (f" (host {host})" if named else "")
    problems = []
    if not isinstance(host, str) or not host.strip():
        problems.append(f"{where} has host {host!r}; expected a non-empty string")
    if not isinstance(record.get("store"), str):
        problems.append(f"{where} has store {record.get('store')!r}; expected a string")
    outcome = record.get("outcome")
    if outcome not in OUTCOMES:
        problems.append(f"{where} has outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")

    batch = record.get("batch")
    if isinstance(batch, str) and batch.strip().isdigit():
        batch = int(batch)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 0):
        problems.append(f"{where} has batch {batch!r}; expected a whole number")
    for key in ("release_before", "release_after"):
        value = record.get(key)
        if value is not None and _release_id(value) is None:
            problems.append(f"{where} has {key} {value!r}; expected null or a release record "
                            "(a dict) with a non-empty id")
    image_id = record.get("ovms_image_id")
    if image_id is not None and not isinstance(image_id, str):
        problems.append(f"{where} has ovms_image_id {image_id!r}; expected a string")
    models = record.get("models")
    if models is not None and (not isinstance(models, list) or not all(
            isinstance(model, dict) and model.get("name") for model in models)):
        problems.append(f"{where} has models {models!r}; expected a list of dicts, each with a "
                        "name and optionally version and state")
    numbers = {}
    for key in ("client_fps", "started", "finished"):
        value = record.get(key)
        numbers[key] = _number(value)
        if value is not None and numbers[key] is None:
            problems.append(f"{where} has {key} {value!r}; expected a number")
    error = record.get("error")
    if problems:
        return problems, {}
    return [], {
        "host": host,
        "store": record["store"],
        "outcome": outcome,
        "batch": batch,
        "release_before": _release_id(record.get("release_before")),
        "release_after": _release_id(record.get("release_after")),
        "ovms_image_id": image_id or None,
        "models": None if models is None else [
            {"name": str(model["name"]), "version": model.get("version"),
             "state": model.get("state")} for model in models],
        "client_fps": numbers["client_fps"],
        "started": numbers["started"],
        "finished": numbers["finished"],
        "error": "" if error is None else str(error).strip(),
    }


def check_records(records: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every problem with the records, and the normalised records when there is none."""
    problems: list[str] = []
    checked = []
    for index, record in enumerate(records):
        record_problems, normalised = _check_record(index, record)
        problems.extend(record_problems)
        checked.append(normalised)
    return problems, checked


def worst_outcome(outcomes: list[str]) -> str:
    """The worst of some outcomes, by SEVERITY; not_started for none."""
    return min(outcomes, key=SEVERITY.index, default="not_started")


def _first(values: list[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def group_stores(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per store from normalised host records, stores in order of first appearance."""
    by_store: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_store.setdefault(record["store"], []).append(record)
    stores = []
    for store, hosts in by_store.items():
        server = next((r for r in hosts if r["ovms_image_id"]), None)
        preferred = ([server] if server else []) + [r for r in hosts if r is not server]
        started = [r["started"] for r in hosts if r["started"] is not None]
        finished = [r["finished"] for r in hosts if r["finished"] is not None]
        stores.append({
            "store": store,
            "outcome": worst_outcome([r["outcome"] for r in hosts]),
            "hosts": [r["host"] for r in hosts],
            "batch": _first([r["batch"] for r in hosts]),
            "release_before": _first([r["release_before"] for r in preferred]),
            "release_after": _first([r["release_after"] for r in preferred]),
            "ovms_image_id": server["ovms_image_id"] if server else None,
            "models": _first([r["models"] for r in preferred]) or [],
            "client_fps": {r["host"]: r["client_fps"] for r in hosts
                           if r["client_fps"] is not None},
            "duration_s": (round(max(finished) - min(started), 1)
                           if started and finished else None),
            "error": "\n".join(f"{r['host']}: {r['error']}" for r in hosts if r["error"]),
        })
    return stores


def count_outcomes(stores: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for store in stores:
        counts[store["outcome"]] += 1
    return counts


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(params: dict[str, Any], stores: list[dict[str, Any]],
                 now: datetime) -> dict[str, Any]:
    return {
        "title": params["title"],
        "generated_at": now.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started": _iso(params["started"]),
        "finished": _iso(params["finished"]),
        "settings": params["settings"],
        "counts": count_outcomes(stores),
        "stores": stores,
    }


# HTML ---------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem;
       color: #1f2328; }
h1 { margin-bottom: .2rem; }
.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9em; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600;
         margin: 0 .4rem .4rem 0; }
.zero { opacity: .45; }
.updated { background: #dafbe1; color: #116329; }
.unchanged { background: #ddf4ff; color: #0550ae; }
.rolled_back { background: #fff1c2; color: #7d4e00; }
.failed_rollback { background: #82071e; color: #ffffff; }
.failed { background: #ffebe9; color: #a40e26; }
.not_started { background: #eaeef2; color: #59636e; }
td.error { white-space: pre-wrap; font-family: ui-monospace, Menlo, monospace;
           font-size: .85em; max-width: 40rem; }
td.num { text-align: right; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _setting_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(
            isinstance(item, (str, int, float)) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def short_image_id(image_id: str) -> str:
    """The first 12 hex digits of an image ID, without its sha256: prefix."""
    digest = image_id.split(":", 1)[1] if image_id.startswith("sha256:") else image_id
    return digest[:12]


def _badge(outcome: str, text: str, zero: bool = False) -> str:
    classes = f"badge {outcome}" + (" zero" if zero else "")
    return f'<span class="{classes}">{_e(text)}</span>'


def _model_text(model: dict[str, Any]) -> str:
    parts = [str(model["name"])]
    if model.get("version") is not None:
        parts.append(f"v{model['version']}")
    if model.get("state"):
        parts.append(str(model["state"]))
    return " ".join(parts)


def _release_html(release: str | None) -> str:
    """A release ID, long ones (such as sha256 digests) shortened with the whole in a tooltip."""
    if release is None:
        return "none"
    if len(release) <= 16:
        return _e(release)
    return f'<code title="{_e(release)}">{_e(release[:12])}</code>'


def _store_row(store: dict[str, Any]) -> str:
    release = ""
    if store["release_before"] or store["release_after"]:
        release = (f"{_release_html(store['release_before'])} &rarr; "
                   f"{_release_html(store['release_after'])}")
    image = ""
    if store["ovms_image_id"]:
        image = (f'<code title="{_e(store["ovms_image_id"])}">'
                 f'{_e(short_image_id(store["ovms_image_id"]))}</code>')
    fps = "<br>".join(f"{_e(host)}: {value:.1f}" for host, value in store["client_fps"].items())
    name = _e(store["store"]) if store["store"] else "<em>(no store name)</em>"
    cells = [
        f"<td>{name}</td>",
        f'<td class="num">{_e(store["batch"])}</td>',
        f"<td>{_badge(store['outcome'], store['outcome'])}</td>",
        f"<td>{'<br>'.join(_e(host) for host in store['hosts'])}</td>",
        f"<td>{release}</td>",
        f"<td>{image}</td>",
        f"<td>{'<br>'.join(_e(_model_text(model)) for model in store['models'])}</td>",
        f"<td>{fps}</td>",
        f'<td class="num">{_e(format_duration(store["duration_s"]))}</td>',
        f'<td class="error">{_e(store["error"])}</td>',
    ]
    return f'<tr class="{_e(store["outcome"])}-row">' + "".join(cells) + "</tr>"


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page; every text is escaped."""
    times = [f"generated {_e(report['generated_at'])}"]
    if report["started"]:
        times.append(f"started {_e(report['started'])}")
    if report["finished"]:
        times.append(f"finished {_e(report['finished'])}")
    settings = "".join(f"<tr><th>{_e(key)}</th><td>{_e(_setting_text(value))}</td></tr>"
                       for key, value in report["settings"].items())
    badges = "".join(_badge(outcome, f"{outcome}: {count}", zero=count == 0)
                     for outcome, count in report["counts"].items())
    headings = ["Store", "Batch", "Outcome", "Hosts", "Release before &rarr; after",
                "OVMS image", "Models", "Client FPS", "Duration", "Error"]
    rows = "\n".join(_store_row(store) for store in report["stores"])
    total = len(report["stores"])
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report['title'])}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(report['title'])}</h1>",
        f'<p class="meta">{"; ".join(times)}</p>',
        "<h2>Settings</h2>",
        f"<table class=\"settings\">{settings}</table>" if settings else "<p>None given.</p>",
        f"<h2>{total} {'store' if total == 1 else 'stores'}</h2>",
        f'<p class="counts">{badges}</p>',
        '<table class="stores">',
        "<thead><tr>" + "".join(f"<th>{heading}</th>" for heading in headings) + "</tr></thead>",
        f"<tbody>\n{rows}\n</tbody>",
        "</table>",
        "</body>",
        "</html>",
        "",
    ])


# Files --------------------------------------------------------------------------------------

def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    descriptor, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                        suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    json_path, html_path = params["json_path"], params["html_path"]
    result: dict[str, Any] = {"changed": False, "json_path": json_path, "html_path": html_path}

    problems, records = check_records(params["records"])
    if os.path.abspath(json_path) == os.path.abspath(html_path):
        problems.append(f"json_path and html_path are both {json_path}; expected two files")
    for key in ("started", "finished"):
        if params[key] is not None and not math.isfinite(params[key]):
            problems.append(f"{key} is {params[key]}; expected epoch seconds")
    if problems:
        module.fail_json(msg="; ".join(problems), **result)

    stores = group_stores(records)
    report = build_report(params, stores, datetime.now(_UTC))
    result.update(counts=report["counts"], stores=stores, generated_at=report["generated_at"])
    if module.check_mode:
        module.exit_json(**result)

    for path, text in ((json_path, json.dumps(report, indent=2) + "\n"),
                       (html_path, render_html(report))):
        try:
            write_atomic(path, text)
        except OSError as exc:
            module.fail_json(msg=f"Could not write the fleet report to {path}: {exc}",
                             **result)
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
