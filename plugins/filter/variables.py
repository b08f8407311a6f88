# Copyright: (c) 2026, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""Filters that check inventory variables against what the roles declare.

``undeclared_variables``: a misspelt role variable (``ovms_server_imge_tag``) is otherwise
silently ignored and the role keeps its default. ``argument_errors``: the values an inventory
gives, checked against a role's argument spec by Ansible's own validator, without the role
defaults and play variables that ``ansible.builtin.validate_argument_spec`` mixes in untemplated.
Documentation is in ``undeclared_variables.yml`` and ``argument_errors.yml`` beside this file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def undeclared_variables(
    names: Iterable[str], declared: Iterable[str], prefixes: Iterable[str]
) -> list[dict[str, str]]:
    """Each name that starts with one of ``prefixes`` and is not ``declared``, with the closest
    declared name ('' when none is close), sorted by name."""
    if isinstance(names, (str, bytes)) or isinstance(declared, (str, bytes)):
        raise AnsibleFilterError("undeclared_variables expects lists of variable names")
    known = sorted({str(n) for n in declared})
    starts = tuple(str(p) for p in prefixes)
    found = []
    for name in sorted({str(n) for n in names}):
        if not name.startswith(starts) or name in known:
            continue
        # Compare within the same prefix first: a typo rarely changes the role part of a name.
        same_role = [k for k in known if k.startswith(tuple(p for p in starts if name.startswith(p)))]
        close = difflib.get_close_matches(name, same_role, n=1, cutoff=0.6) or difflib.get_close_matches(
            name, known, n=1, cutoff=0.6
        )
        found.append({"name": name, "closest": close[0] if close else ""})
    return found


def _without_defaults(options: dict[str, Any]) -> dict[str, Any]:
    stripped = {}
    for name, option in options.items():
        option = {key: value for key, value in dict(option).items() if key != "default"}
        if isinstance(option.get("options"), dict):
            option["options"] = _without_defaults(option["options"])
        stripped[name] = option
    return stripped


def argument_errors(values: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """Each error of ``values`` against the argument spec ``options`` (only the names both
    hold are checked: an option the inventory leaves out keeps the role's default)."""
    if not isinstance(values, dict) or not isinstance(options, dict):
        raise AnsibleFilterError("argument_errors expects a mapping of values and a mapping of spec options")
    given = {name: value for name, value in values.items() if name in options}
    # Ansible's own validator: the same conversions and messages as the roles' entry points.
    # Without the spec's defaults: they document the role's defaults, often as unrendered
    # templates, and are not what the inventory gives.
    result = ArgumentSpecValidator(_without_defaults(options)).validate(given)
    return [str(message) for message in result.error_messages]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"undeclared_variables": undeclared_variables, "argument_errors": argument_errors}
