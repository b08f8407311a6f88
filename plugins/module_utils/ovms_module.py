# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""What the modules that talk to OVMS over gRPC share: their connection options, the checks
the argument spec cannot express, and the message for a missing client library."""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_grpc import TlsOptions
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import (
    InvalidModelList,
    ModelRequest,
    parse_models,
)

ARGUMENT_SPEC = {
    "host": {"type": "str", "required": True},
    "port": {"type": "int", "default": 9000},
    "api": {"type": "str", "default": "kserve", "choices": ["kserve", "tfs"]},
    "models": {"type": "list", "elements": "raw", "required": True},
    "timeout": {"type": "float", "default": 60},
    "interval": {"type": "float", "default": 1},
    "ca_cert": {"type": "path"},
    "client_cert": {"type": "path"},
    # A path, not key material: nothing secret to hide.
    "client_key": {"type": "path", "no_log": False},
    "server_name": {"type": "str"},
}

# Keyword arguments of AnsibleModule that go with ARGUMENT_SPEC.
CONSTRAINTS: dict[str, t.Any] = {
    "required_together": [("client_cert", "client_key")],
    "required_by": {"client_cert": "ca_cert", "server_name": "ca_cert"},
}


def check_arguments(params: dict) -> tuple[list[str], list[ModelRequest], TlsOptions]:
    """Problems the argument spec cannot express, all at once, plus the parsed options."""
    problems = []
    if not 1 <= params["port"] <= 65535:
        problems.append(f"port is {params['port']}; expected 1-65535")
    if params["timeout"] < 0:
        problems.append(f"timeout is {params['timeout']}; expected 0 or more seconds")
    if params["interval"] <= 0:
        problems.append(f"interval is {params['interval']}; expected more than 0 seconds")
    models: list[ModelRequest] = []
    if not params["models"]:
        problems.append("models is empty; expected at least one model name")
    try:
        models = parse_models(params["models"])
    except InvalidModelList as exc:
        problems.append(str(exc))
    tls = TlsOptions(params["ca_cert"], params["client_cert"], params["client_key"],
                     params["server_name"])
    try:
        tls.check_files()
    except ValueError as exc:
        problems.append(str(exc))
    return problems, models, tls


def missing_library_message(package: str, error: str, reason: str) -> str:
    """Ansible's missing-library text plus the last traceback line, which tells a missing
    package from a broken one."""
    import_error = error.strip().splitlines()[-1]
    return f"{missing_required_lib(package, reason=reason)}. Import error: {import_error}"
