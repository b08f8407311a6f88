"""Command line parsing with OVMS's flag names, defaults and validation messages.

Tokens are read the way cxxopts 3.1.1 reads them in OVMS (src/cli_parser.cpp, which calls
allow_unrecognised_options()): unknown options and stray values are collected and reported
together as "unmatched arguments"; boolean flags never take the next token as their value
(only ``--flag=value``); other flags take the next token whatever it looks like. Usage errors
print to stderr and exit 64 (EX_USAGE), as OVMS does.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
from collections.abc import Callable
from typing import Any, NoReturn

EX_USAGE = 64
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
MAX_PORT = 65535
MAX_REST_WORKERS = 10_000
MAX_UINT32 = 2**32 - 1
MODEL_CLI_FLAGS = (
    "batch_size",
    "shape",
    "layout",
    "model_version_policy",
    "nireq",
    "target_device",
    "plugin_config",
)
# Flags OVMS 2026.3 removed with stateful models: it rejects them as unmatched arguments.
REMOVED_FLAGS = (
    "stateful",
    "idle_sequence_cleanup",
    "low_latency_transformation",
    "max_sequence_number",
    "sequence_cleaner_poll_wait_minutes",
)
_IP = re.compile(r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
_HOST = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
)
# cxxopts' token patterns (regex build): a long option, or a group of short ones.
_LONG = re.compile(r"--([A-Za-z0-9][-_A-Za-z0-9.]+)(=(.*))?", re.DOTALL)
_SHORT = re.compile(r"-([A-Za-z0-9].*)", re.DOTALL)
_INTEGER = re.compile(r"(-)?(0x)?([0-9a-zA-Z]+)|((0x)?0)")
_TRUE = re.compile(r"(t|T)(rue)?|1")
_FALSE = re.compile(r"(f|F)(alse)?|0")
# cxxopts quotes names and values with these on Linux.
_LQ, _RQ = "\u2018", "\u2019"


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """What the server was asked to do, after validation."""

    port: int
    rest_port: int
    grpc_bind_address: str
    rest_bind_address: str
    grpc_workers: int
    rest_workers: int | None
    log_level: str
    log_path: str | None
    file_system_poll_wait_seconds: int
    metrics_enable: bool
    metrics_list: tuple[str, ...]
    config_path: str | None
    model_name: str | None
    model_path: str | None
    single_model: dict[str, object]


class ParseError(Exception):
    """What cxxopts throws; OVMS prints "error parsing options: <text>"."""


def usage_error(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(EX_USAGE)


def _bool(text: str) -> bool:
    if _TRUE.fullmatch(text):
        return True
    if _FALSE.fullmatch(text):
        return False
    raise ParseError(f"Argument {_LQ}{text}{_RQ} failed to parse")


def _uint32(text: str) -> int:
    match = _INTEGER.fullmatch(text)
    if match is None:
        raise ParseError(f"Argument {_LQ}{text}{_RQ} failed to parse")
    negative, hex_prefix, digits = match.group(1), match.group(2), match.group(3)
    if match.group(4):
        return 0
    try:
        value = int(digits, 16 if hex_prefix else 10)
    except ValueError:
        raise ParseError(f"Argument {_LQ}{text}{_RQ} failed to parse") from None
    if negative or value > MAX_UINT32:
        raise ParseError(f"Argument {_LQ}{text}{_RQ} failed to parse")
    return value


@dataclasses.dataclass(frozen=True)
class _Option:
    parse: Callable[[str], Any]
    default: Any = None
    help: str = ""

    @property
    def is_bool(self) -> bool:
        return self.parse is _bool


# OVMS's flags that the stand-in knows, with their cxxopts types and defaults.
OPTIONS: dict[str, _Option] = {
    "help": _Option(_bool, False, "Show this help message and exit"),
    "version": _Option(_bool, False, "Show binary version"),
    "port": _Option(_uint32, 0, "gRPC server port (0: off)"),
    "grpc_bind_address": _Option(str, "0.0.0.0"),
    "rest_port": _Option(_uint32, 0, "REST server port (0: off)"),
    "rest_bind_address": _Option(str, "0.0.0.0"),
    "grpc_workers": _Option(_uint32, 1),
    "rest_workers": _Option(_uint32),
    "log_level": _Option(str, "INFO", "one of TRACE, DEBUG, INFO, WARNING, ERROR"),
    "log_path": _Option(str),
    "grpc_channel_arguments": _Option(str),
    "file_system_poll_wait_seconds": _Option(_uint32, 1),
    "custom_node_resources_cleaner_interval_seconds": _Option(_uint32, 300),
    "cache_dir": _Option(str),
    "metrics_enable": _Option(_bool, False),
    "metrics_list": _Option(str, ""),
    "cpu_extension": _Option(str, ""),
    "config_path": _Option(str),
    "model_name": _Option(str),
    "model_path": _Option(str),
    "batch_size": _Option(str),
    "shape": _Option(str),
    "layout": _Option(str),
    "model_version_policy": _Option(str),
    "nireq": _Option(_uint32),
    "target_device": _Option(str),
    "plugin_config": _Option(str),
}
_SHORT_NAMES = {"h": "help"}


def _tokens(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Read argv like cxxopts with unrecognised options allowed: (given values, unmatched)."""
    given: dict[str, Any] = {}
    unmatched: list[str] = []
    current = 0
    while current < len(argv):
        arg = argv[current]
        if arg == "--":
            # No positional options are defined, so everything after "--" is unmatched.
            unmatched.extend(argv[current + 1 :])
            break
        if long := _LONG.fullmatch(arg):
            name, has_value, value = long.group(1), long.group(2), long.group(3)
            option = OPTIONS.get(name)
            if option is None:
                unmatched.append(arg)
            elif has_value:
                given[name] = option.parse(value or "")
            elif option.is_bool:
                given[name] = True
            elif current + 1 < len(argv):
                current += 1
                given[name] = option.parse(argv[current])
            else:
                raise ParseError(f"Option {_LQ}{name}{_RQ} is missing an argument")
        elif short := _SHORT.fullmatch(arg):
            for letter in short.group(1):
                # -h is the only short option, and a flag: nothing takes a value here.
                if letter in _SHORT_NAMES:
                    given[_SHORT_NAMES[letter]] = True
                else:
                    unmatched.append(f"-{letter}")
        else:
            unmatched.append(arg)
        current += 1
    return given, unmatched


def _help() -> str:
    lines = [
        "OpenVINO Model Server (Python stand-in for tests)",
        "Usage:",
        "  ovms [OPTION...]",
        "",
    ]
    for name, option in OPTIONS.items():
        default = "" if option.default in (None, "", False) else f" (default: {option.default})"
        lines.append(f"  --{name:<48} {option.help}{default}".rstrip())
    return "\n".join(lines) + "\n"


def _valid_address(address: str) -> bool:
    if len(address) > 255:
        return False
    if all(c.isdigit() or c == "." for c in address):
        return bool(_IP.match(address))
    return bool(_HOST.match(address))


def parse(argv: list[str]) -> ServerSettings:
    try:
        given, unmatched = _tokens(argv)
    except ParseError as error:
        usage_error(f"error parsing options: {error}")
    if unmatched:
        # OVMS's text: every unmatched token followed by ", ", then a newline.
        print(
            "error parsing options - unmatched arguments: "
            + "".join(f"{token}, " for token in unmatched),
            file=sys.stderr,
        )
        raise SystemExit(EX_USAGE)
    if given.get("version"):
        print("OpenVINO Model Server (Python stand-in for tests)")
        raise SystemExit(0)
    if given.get("help") or not given:
        print(_help())
        raise SystemExit(0)
    values = {name: given.get(name, option.default) for name, option in OPTIONS.items()}
    return _validate(types.SimpleNamespace(**values))


def _validate(args: types.SimpleNamespace) -> ServerSettings:
    single = args.model_name is not None or args.model_path is not None
    if args.config_path and single:
        usage_error("Use either config_path or model_path with model_name")
    if not args.config_path and not (args.model_name and args.model_path):
        usage_error("Use config_path or model_path with model_name")
    model_flags = {name: getattr(args, name) for name in MODEL_CLI_FLAGS}
    if args.config_path and any(value is not None for value in model_flags.values()):
        usage_error("Model parameters in CLI are exclusive with the config file")
    cores = os.cpu_count() or 1
    if not 1 <= args.grpc_workers <= cores:
        usage_error(f"grpc_workers count should be from 1 to CPU core count : {cores}")
    if args.rest_workers is not None:
        if not 2 <= args.rest_workers <= MAX_REST_WORKERS:
            usage_error(f"rest_workers count should be from 2 to {MAX_REST_WORKERS}")
        if args.rest_port == 0:
            usage_error(
                "rest_workers is set but rest_port is not set. "
                "rest_port is required to start rest servers"
            )
    if args.port > MAX_PORT:
        usage_error(f"port number out of range from 0 to {MAX_PORT}")
    if args.rest_port > MAX_PORT:
        usage_error(f"rest_port number out of range from 0 to {MAX_PORT}")
    if args.metrics_enable and args.rest_port == 0:
        usage_error("rest_port setting is missing, metrics are enabled on rest port")
    if not args.metrics_enable and args.metrics_list:
        usage_error("metrics_enable setting is missing, required when metrics_list is provided")
    if not _valid_address(args.rest_bind_address):
        usage_error("rest_bind_address has invalid format: proper hostname or IP address expected.")
    if not _valid_address(args.grpc_bind_address):
        usage_error("grpc_bind_address has invalid format: proper hostname or IP address expected.")
    if args.port == args.rest_port:
        usage_error("port and rest_port cannot have the same values")
    if args.log_level not in LOG_LEVELS:
        usage_error("log_level should be one of: TRACE, DEBUG, INFO, WARNING, ERROR")
    metrics_list = tuple(m.strip() for m in args.metrics_list.split(",") if m.strip())
    return ServerSettings(
        port=args.port,
        rest_port=args.rest_port,
        grpc_bind_address=args.grpc_bind_address,
        rest_bind_address=args.rest_bind_address,
        grpc_workers=args.grpc_workers,
        rest_workers=args.rest_workers,
        log_level=args.log_level,
        log_path=args.log_path,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        metrics_enable=bool(args.metrics_enable),
        metrics_list=metrics_list,
        config_path=args.config_path,
        model_name=args.model_name,
        model_path=args.model_path,
        single_model={k: v for k, v in model_flags.items() if v is not None},
    )
