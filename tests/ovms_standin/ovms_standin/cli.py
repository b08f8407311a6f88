"""Command line parsing with OVMS's flag names, defaults and validation messages.

Usage errors print to stderr and exit 64 (EX_USAGE), as OVMS does.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from typing import NoReturn

EX_USAGE = 64
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
MAX_PORT = 65535
MAX_REST_WORKERS = 10_000
MODEL_CLI_FLAGS = (
    "batch_size",
    "shape",
    "layout",
    "model_version_policy",
    "nireq",
    "target_device",
    "plugin_config",
)
_IP = re.compile(r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")
_HOST = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
)


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        usage_error(f"error parsing options: {message}")


def usage_error(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(EX_USAGE)


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def _uint(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got '{value}'")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ovms",
        description="OpenVINO Model Server (Python stand-in for tests)",
        allow_abbrev=False,
        add_help=False,
    )
    add = parser.add_argument
    add("-h", "--help", action="store_true", help="Show this help message and exit")
    add("--version", action="store_true", help="Show binary version")
    add("--port", type=_uint, default=0, help="gRPC server port (0: off)")
    add("--grpc_bind_address", default="0.0.0.0")
    add("--rest_port", type=_uint, default=0, help="REST server port (0: off)")
    add("--rest_bind_address", default="0.0.0.0")
    add("--grpc_workers", type=_uint, default=1)
    add("--rest_workers", type=_uint, default=None)
    add("--log_level", default="INFO")
    add("--log_path", default=None)
    add("--grpc_channel_arguments", default=None)
    add("--file_system_poll_wait_seconds", type=_uint, default=1)
    add("--sequence_cleaner_poll_wait_minutes", type=_uint, default=5)
    add("--custom_node_resources_cleaner_interval_seconds", type=_uint, default=1)
    add("--cache_dir", default=None)
    add("--metrics_enable", type=_bool, nargs="?", const=True, default=False)
    add("--metrics_list", default="")
    add("--cpu_extension", default="")
    add("--config_path", default=None)
    add("--model_name", default=None)
    add("--model_path", default=None)
    add("--batch_size", default=None)
    add("--shape", default=None)
    add("--layout", default=None)
    add("--model_version_policy", default=None)
    add("--nireq", type=_uint, default=None)
    add("--target_device", default=None)
    add("--plugin_config", default=None)
    add("--stateful", type=_bool, nargs="?", const=True, default=None)
    add("--idle_sequence_cleanup", type=_bool, nargs="?", const=True, default=None)
    add("--low_latency_transformation", type=_bool, nargs="?", const=True, default=None)
    add("--max_sequence_number", type=_uint, default=None)
    return parser


def _valid_address(address: str) -> bool:
    if len(address) > 255:
        return False
    if all(c.isdigit() or c == "." for c in address):
        return bool(_IP.match(address))
    return bool(_HOST.match(address))


def parse(argv: list[str]) -> ServerSettings:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = unknown[0].lstrip("-").split("=", 1)[0]
        usage_error(f"error parsing options: Option '{flag}' does not exist")
    if args.help or not argv:
        parser.print_help()
        raise SystemExit(0)
    if args.version:
        print("OpenVINO Model Server (Python stand-in for tests)")
        raise SystemExit(0)
    return _validate(args)


def _validate(args: argparse.Namespace) -> ServerSettings:
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
