"""`ovms-client`: command line entry point. Exit codes are listed in README.md."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ovms_client import __version__
from ovms_client.errors import ClientError, ExitCode
from ovms_client.settings import (
    FILES_MUST_EXIST,
    SETTINGS,
    SettingInfo,
    Settings,
    load,
    shipped_profiles,
)

if TYPE_CHECKING:
    from ovms_client.app import App

log = logging.getLogger("ovms_client")

EPILOG = """\
Every setting can come from the profile (key), an env file or the environment
(OVMS_CLIENT_<KEY>) or a flag; flags win over the environment, the environment over the env
file, the env file over the profile.

exit codes: 0 done (input ended or SIGTERM/SIGINT), 1 internal error, 2 bad configuration,
3 model not ready within ready_timeout, 4 input cannot be opened or read,
5 the server rejected requests or returned outputs the adapter cannot read.
"""


def _help(info: SettingInfo) -> str:
    """The setting's description for --help: where else it can be set and its default."""
    # argparse expands %-formats in help; the description is Markdown for the README.
    text = info.help.replace("`", "").replace("%", "%%")
    default = "required" if info.required else f"default: {info.default_text}"
    return f"{text} (env {info.env}; {default})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovms-client",
        description="Send frames to OpenVINO Model Server over gRPC; write detections and FPS "
        "as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile",
        help="profile YAML, or the name of a profile shipped "
        f"with the client ({', '.join(shipped_profiles())}); env "
        "OVMS_CLIENT_PROFILE",
    )
    parser.add_argument(
        "--env-file", help="KEY=VALUE file of OVMS_CLIENT_* settings (env OVMS_CLIENT_ENV_FILE)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the settings, print them as JSON and exit without contacting the server",
    )
    parser.add_argument(
        "--no-file-checks",
        action="store_true",
        help="with --check: accept files the settings name that are not on this machine (to "
        "check the settings of another machine, as the Ansible role does on its controller)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    group = parser.add_argument_group("settings")
    for info in SETTINGS.values():
        # Values stay text here (default None = not given): the settings model parses them,
        # so a bad flag value is reported like a bad profile value, naming the flag.
        if info.is_bool:
            group.add_argument(
                info.flag,
                dest=info.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=_help(info),
            )
        else:
            group.add_argument(
                info.flag,
                dest=info.name,
                default=None,
                metavar=info.metavar,
                action="append" if info.names.repeatable else "store",
                help=_help(info),
            )
    return parser


def _flags(namespace: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(namespace, name) for name in SETTINGS if getattr(namespace, name) is not None
    }


def _install_signal_handlers(app: App) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if not app.stop.is_set():
            log.info(
                "received %s; finishing requests in flight and writing the summary",
                signal.Signals(signum).name,
            )
        app.stopped_by_signal = True
        app.stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    if args.no_file_checks:
        FILES_MUST_EXIST.set(False)
    try:
        settings: Settings = load(_flags(args), os.environ, Path.cwd(), args.profile, args.env_file)
    except ClientError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    logging.getLogger().setLevel(settings.log_level)
    if args.check:
        print(json.dumps(settings.to_dict(), indent=2))
        return int(ExitCode.OK)

    # Imported here: --check needs only the settings (pydantic, PyYAML), not the inference stack.
    from ovms_client.app import App

    app = App(settings, threading.Event())
    _install_signal_handlers(app)
    try:
        code = app.run()
    except ClientError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    except Exception:
        log.exception("internal error")
        return int(ExitCode.INTERNAL)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
