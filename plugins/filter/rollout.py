# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Filters for a staged rollout, where stores (not hosts) are the unit.

``rollout_batches`` splits the ordered store list into batches from a list of batch sizes shaped
like Ansible's ``serial`` list; ``rollout_verdict`` decides from the outcomes of the stores
finished so far whether the rollout stops before its next batch. Their documentation is in
``rollout_batches.yml`` and ``rollout_verdict.yml`` beside this file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ansible.errors import AnsibleFilterError

# Every outcome a store (or host) can have after its batch, in the order reports list them.
OUTCOMES = ("updated", "unchanged", "rolled_back", "failed_rollback", "failed", "not_started")
# The outcomes that count against the rollout: the new release did not end up serving.
FAILED_OUTCOMES = frozenset({"failed", "rolled_back", "failed_rollback"})

_BATCH_EXAMPLE = '[1, "10%", "100%"]'
_COUNT_EXPECTED = 'a number of stores of at least 1 or a percentage string like "25%"'
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%", re.ASCII)
_COUNT = re.compile(r"\d+", re.ASCII)
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def _show(value: Any) -> str:
    """A value as the YAML a user wrote: strings quoted, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(str(value))
    return str(value)


def _described(value: Any) -> str:
    """A value and its type, for a message about a value of the wrong type."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer"),
                       (float, "a float"), (dict, "a dict"), (list, "a list")):
        if isinstance(value, kind):
            return f"{_show(value)}, {name}"
    return f"{_show(value)}, a {type(value).__name__}"


def _batch_size(entry: Any, index: int, total: int, variable: str) -> int:
    """The size of one batch before capping at what remains; AnsibleFilterError when invalid."""
    where = f"{variable}[{index}] is {_show(entry)}"
    if isinstance(entry, bool):
        raise AnsibleFilterError(f"{variable}[{index}] is {_described(entry)}; expected "
                                 f"{_COUNT_EXPECTED}")
    if isinstance(entry, float):
        raise AnsibleFilterError(f"{variable}[{index}] is {_described(entry)}; expected a whole "
                                 'number of stores of at least 1 or a percentage string like '
                                 '"12.5%"')
    if isinstance(entry, int):
        if entry < 1:
            raise AnsibleFilterError(f"{where}; expected {_COUNT_EXPECTED}")
        return int(entry)
    if not isinstance(entry, str):
        raise AnsibleFilterError(f"{variable}[{index}] is {_described(entry)}; expected "
                                 f"{_COUNT_EXPECTED}")
    text = str(entry).strip()
    percent = _PERCENT.fullmatch(text)
    if percent:
        share = Fraction(percent.group(1))  # exact: 10% of 30 is 3, not 3.0000000000000004
        if not 0 < share <= 100:
            raise AnsibleFilterError(f"{where}; expected a percentage above 0% and at most "
                                     "100% of the stores")
        return max(1, math.ceil(share * total / 100))
    if _COUNT.fullmatch(text):
        if int(text) < 1:
            raise AnsibleFilterError(f"{where}; expected {_COUNT_EXPECTED}")
        return int(text)
    raise AnsibleFilterError(f"{where}; expected {_COUNT_EXPECTED}")


def rollout_batches(stores: Any, batches: Any,
                    variable: str = "ovms_rollout_batches") -> list[list[str]]:
    """Split ``stores`` (ordered store names) into batches sized by ``batches``.

    Each entry of ``batches`` is a count of stores or a percentage ``"N%"`` of all stores
    (rounded up, at least 1); the last entry repeats until every store is in a batch, and a
    batch never holds more stores than remain. ``variable`` names ``batches`` in errors.
    """
    if not isinstance(batches, (list, tuple)):
        raise AnsibleFilterError(
            f"{variable} is {_described(batches)}; expected a list of batch "
            f"sizes, each {_COUNT_EXPECTED}, for example {_BATCH_EXAMPLE}")
    if not batches:
        raise AnsibleFilterError(
            f"{variable} is an empty list; expected at least one batch size, each "
            f"{_COUNT_EXPECTED}, for example {_BATCH_EXAMPLE}")
    if not isinstance(stores, (list, tuple)):
        raise AnsibleFilterError(
            f"the stores to split into {variable} are {_described(stores)}; "
            "expected a list of store names")
    if not stores:
        raise AnsibleFilterError(
            f"the list of stores to split into {variable} is empty; expected at least one store "
            "name (does the inventory or --limit select any store host?)")
    seen: set[str] = set()
    for index, store in enumerate(stores):
        # An empty name is allowed: the hosts without a store name make up one store.
        if not isinstance(store, str):
            raise AnsibleFilterError(
                f"store {index} of the stores to split into {variable} is {_described(store)}; "
                "expected a store name string")
        if store in seen:
            raise AnsibleFilterError(
                f"store {_show(store)} is listed more than once in the stores to split into "
                f"{variable}; expected each store once")
        seen.add(store)

    total = len(stores)
    sizes = [_batch_size(entry, index, total, variable) for index, entry in enumerate(batches)]
    names = [str(store) for store in stores]
    result: list[list[str]] = []
    start = 0
    while start < total:
        size = sizes[min(len(result), len(sizes) - 1)]
        result.append(names[start:start + size])
        start += size
    return result


def _whole_number(value: Any, name: str) -> int:
    """An int >= 0 from an int or a string of digits (extra vars arrive as strings)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
        return int(value.strip())
    raise AnsibleFilterError(f"{name} is {_show(value)}; expected a whole number of stores, "
                             "0 or more")


def _percentage(value: Any, name: str) -> Fraction:
    """A number 0..100 from an int, a float or a numeric string, kept exact."""
    number: Fraction | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        number = Fraction(str(value)) if isinstance(value, float) else Fraction(int(value))
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Fraction(value.strip())
    if number is None or not 0 <= number <= 100:
        raise AnsibleFilterError(f"{name} is {_show(value)}; expected a percentage of finished "
                                 "stores from 0 to 100, without a % sign")
    return number


def _format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"


def rollout_verdict(outcomes: Any, min_done: Any, max_failed_percent: Any,
                    variable_prefix: str = "ovms_rollout") -> dict[str, Any]:
    """Whether the rollout stops before its next batch, from the stores finished so far.

    ``outcomes`` holds one outcome per store of every batch so far; ``not_started`` ones are
    ignored. A store failed when its outcome is failed, rolled_back or failed_rollback. The
    rollout stops once at least ``min_done`` stores finished and more than
    ``max_failed_percent`` percent of them failed.
    """
    min_done_name = f"{variable_prefix}_min_done"
    max_failed_name = f"{variable_prefix}_max_failed_percent"
    minimum = _whole_number(min_done, min_done_name)
    threshold = _percentage(max_failed_percent, max_failed_name)
    if not isinstance(outcomes, (list, tuple)):
        raise AnsibleFilterError(f"the store outcomes given to rollout_verdict are "
                                 f"{_described(outcomes)}; expected a list "
                                 f"of outcomes, each one of {', '.join(OUTCOMES)}")
    for index, outcome in enumerate(outcomes):
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            raise AnsibleFilterError(f"store outcome {index} given to rollout_verdict is "
                                     f"{_show(outcome)}; expected one of {', '.join(OUTCOMES)}")

    finished = [str(outcome) for outcome in outcomes if outcome != "not_started"]
    done = len(finished)
    failed = sum(1 for outcome in finished if outcome in FAILED_OUTCOMES)
    ratio = Fraction(failed * 100, done) if done else Fraction(0)
    stop = done >= minimum and ratio > threshold
    limit = _format_number(threshold)
    share = (f"{failed} of {done} finished {'store' if done == 1 else 'stores'} failed or rolled "
             f"back ({float(ratio):.1f} %)")
    if not done:
        reason = "no store has finished yet; the rollout goes on"
    elif stop:
        reason = f"{share}, above {max_failed_name} {limit}; stopping before the next batch"
    elif ratio > threshold:
        reason = (f"{share}, above {max_failed_name} {limit}, but fewer stores finished than "
                  f"{min_done_name} {minimum}; the rollout goes on")
    else:
        reason = f"{share}, within {max_failed_name} {limit}; the rollout goes on"
    return {"stop": stop, "done": done, "failed": failed,
            "failed_percent": round(float(ratio), 2), "reason": reason}


class FilterModule:
    """Staged rollout filters: rollout_batches and rollout_verdict."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"rollout_batches": rollout_batches, "rollout_verdict": rollout_verdict}
