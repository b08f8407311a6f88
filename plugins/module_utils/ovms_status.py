# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0
"""What a model's status is, when it counts as AVAILABLE, and how to wait for it.

API-independent: the gRPC clients in ``ovms_grpc`` turn each API's answers into the
types defined here.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

AVAILABLE = "AVAILABLE"
# OVMS moves a version to END when it retires it on purpose (a newer version replaced it
# under the "latest" policy, or its directory was removed), so END is not a failure.
RETIRED = "END"
# KServe only says ready or not; this is the state reported for "not ready".
NOT_READY = "NOT_READY"

MODEL_ITEM_SPEC = {
    "name": {"type": "str", "required": True},
    "version": {"type": "int"},
}


class ServerUnreachable(Exception):
    """The server could not be asked at all (connection, TLS, wrong API, deadline)."""


class InvalidModelList(ValueError):
    """An entry of the ``models`` option is not a name or a {name, version} dict."""


@dataclasses.dataclass(frozen=True)
class ModelRequest:
    name: str
    version: int | None = None

    def label(self) -> str:
        if self.version is None:
            return f"'{self.name}'"
        return f"'{self.name}' version {self.version}"


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int | None
    state: str
    error_code: int = 0
    error_message: str = ""

    def as_dict(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        what = "a version" if self.version is None else f"version {self.version}"
        text = f"{what} is {self.state}"
        # OVMS reports error_message "OK" alongside code 0 for healthy versions.
        if self.error_message and self.error_message != "OK":
            text += f" (error {self.error_code}: {self.error_message})"
        return text


@dataclasses.dataclass(frozen=True)
class ModelStatus:
    request: ModelRequest
    versions: tuple[VersionStatus, ...] = ()
    # The server's answer when it gave no per-version status (e.g. model not found).
    error: str = ""

    @property
    def available(self) -> bool:
        if self.error:
            return False
        if self.request.version is not None:
            return any(v.version == self.request.version and v.state == AVAILABLE
                       for v in self.versions)
        # Without a pinned version every version the server is still trying to serve must
        # be AVAILABLE: a version stuck in LOADING is a failed load even if an older one
        # still answers.
        states = [v.state for v in self.versions]
        return AVAILABLE in states and all(s in (AVAILABLE, RETIRED) for s in states)

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "name": self.request.name,
            "requested_version": self.request.version,
            "available": self.available,
            "error": self.error,
            "versions": [v.as_dict() for v in self.versions],
        }

    def describe_problem(self) -> str:
        """Why this model is not available, in the server's words."""
        if self.error:
            return f"{self.request.label()}: {self.error}"
        if self.request.version is not None:
            pinned = [v for v in self.versions if v.version == self.request.version]
            if not pinned:
                return f"{self.request.label()}: the server reports no such version"
            return f"{self.request.label()}: {pinned[0].describe()}"
        bad = [v.describe() for v in self.versions if v.state not in (AVAILABLE, RETIRED)]
        if bad:
            return f"{self.request.label()}: {', '.join(bad)}"
        reported = ", ".join(v.describe() for v in self.versions) or "no versions"
        return f"{self.request.label()}: no version is AVAILABLE (server reports: {reported})"


class StatusSource(t.Protocol):
    """One connection to a server that can report model status."""

    def check_server(self) -> None:
        """Raise ServerUnreachable when the server cannot be asked."""

    def model_status(self, model: ModelRequest) -> ModelStatus:
        """Ask for one model; raise ServerUnreachable when the server cannot be asked."""

    def close(self) -> None:
        """Release the connection."""


@dataclasses.dataclass(frozen=True)
class WaitResult:
    statuses: tuple[ModelStatus, ...]
    elapsed: float
    unreachable: ServerUnreachable | None

    @property
    def ok(self) -> bool:
        return self.unreachable is None and all(s.available for s in self.statuses)

    def failure_message(self, address: str, api: str, timeout: float) -> str:
        if self.unreachable is not None:
            return (f"Could not query OVMS at {address} over the {api} gRPC API within "
                    f"{_seconds(timeout)} s: {self.unreachable}")
        problems = [s.describe_problem() for s in self.statuses if not s.available]
        return (f"{len(problems)} of {len(self.statuses)} models on OVMS at {address} ({api} "
                f"API) were not AVAILABLE after {_seconds(self.elapsed)} s: "
                f"{'; '.join(problems)}. The server log names the cause of a failed load.")


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def parse_models(items: list[t.Any]) -> list[ModelRequest]:
    """Turn the ``models`` option (names or {name, version} dicts) into requests."""
    validator = ArgumentSpecValidator(MODEL_ITEM_SPEC)
    requests = []
    for index, item in enumerate(items):
        where = f"models[{index}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise InvalidModelList(
                f"{where} is {item!r}; expected a model name or a dict with 'name' and optional "
                "'version'")
        unknown = sorted(set(item) - set(MODEL_ITEM_SPEC), key=str)
        if unknown:
            raise InvalidModelList(f"{where} has unknown key(s) {', '.join(map(str, unknown))}; "
                                   "expected only 'name' and 'version'")
        if isinstance(item.get("version"), bool):
            raise InvalidModelList(f"{where} version is {item['version']!r}; expected a positive "
                                   "integer")
        result = validator.validate(item)
        if result.error_messages:
            raise InvalidModelList(f"{where} ({item!r}): {'; '.join(result.error_messages)}; "
                                   "expected a model name or a dict with 'name' and optional "
                                   "'version'")
        params = result.validated_parameters
        if not params["name"]:
            raise InvalidModelList(f"{where} has an empty name; expected the model name from the "
                                   "OVMS config")
        if params["version"] is not None and params["version"] < 1:
            raise InvalidModelList(
                f"{where} version is {params['version']}; expected a positive integer (OVMS "
                "version directories are 1, 2, ...), or no version to check every version the "
                "server serves")
        requests.append(ModelRequest(params["name"], params["version"]))
    names = [(r.name, r.version) for r in requests]
    duplicates = sorted({f"{name}/{version}" for name, version in names
                         if names.count((name, version)) > 1})
    if duplicates:
        raise InvalidModelList(f"models lists {', '.join(duplicates)} more than once; expected "
                               "each model (and version) once")
    return requests


def parse_tfs_status(request: ModelRequest, status: dict[int, dict[str, t.Any]]) -> ModelStatus:
    """Read ovmsclient's ``get_model_status`` answer: {version: {state, error_code, ...}}."""
    versions = tuple(
        VersionStatus(
            version=int(version),
            state=str(fields.get("state", "UNKNOWN")),
            error_code=int(fields.get("error_code", 0)),
            error_message=str(fields.get("error_message", "")),
        )
        for version, fields in sorted(status.items())
    )
    return ModelStatus(request, versions)


def query_once(source: StatusSource, models: list[ModelRequest]) -> tuple[ModelStatus, ...]:
    source.check_server()
    return tuple(source.model_status(model) for model in models)


def wait_for_models(
    open_source: t.Callable[[float], StatusSource],
    models: list[ModelRequest],
    timeout: float,
    interval: float,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll until every model is available or ``timeout`` seconds have passed.

    ``open_source(rpc_timeout)`` is called every round: a fresh channel does not inherit
    gRPC's reconnect back-off, so a server that starts late is seen on the next poll.
    """
    start = clock()
    while True:
        rpc_timeout = max(1.0, min(10.0, timeout - (clock() - start)))
        source = open_source(rpc_timeout)
        unreachable = None
        statuses: tuple[ModelStatus, ...] = ()
        try:
            statuses = query_once(source, models)
        except ServerUnreachable as exc:
            unreachable = exc
        finally:
            source.close()
        result = WaitResult(statuses, clock() - start, unreachable)
        if result.ok or result.elapsed >= timeout:
            return result
        # The last round lands on the deadline rather than after it.
        sleep(min(interval, timeout - result.elapsed))
