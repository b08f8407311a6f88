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
from typing import Any

from ovms_client import __version__
from ovms_client.app import App
from ovms_client.errors import ClientError, ExitCode
from ovms_client.settings import FIELDS, Settings, flag_name, load

log = logging.getLogger("ovms_client")

EPILOG = """\
Every setting can come from the profile (key), an env file or the environment
(OVMS_CLIENT_<KEY>) or a flag; flags win over the environment, the environment over the env
file, the env file over the profile.

exit codes: 0 done (input ended or SIGTERM/SIGINT), 1 internal error, 2 bad configuration,
3 model not ready within ready_timeout, 4 input cannot be opened or read,
5 the server rejected requests or returned outputs the adapter cannot read.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovms-client",
        description="Send frames to OpenVINO Model Server over gRPC; write detections and FPS "
                    "as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", help="profile YAML, or the name of a shipped profile "
                        "(env OVMS_CLIENT_PROFILE)")
    parser.add_argument("--env-file", help="KEY=VALUE file of OVMS_CLIENT_* settings "
                        "(env OVMS_CLIENT_ENV_FILE)")
    parser.add_argument("--check", action="store_true", help="validate the settings, print "
                        "them as JSON and exit without contacting the server")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    settings_group = parser.add_argument_group("settings")
    for spec in FIELDS:
        flag = flag_name(spec.name)
        if spec.name == "inputs":
            settings_group.add_argument("--input", dest="inputs", action="append",
                                        metavar="SOURCE", help=spec.help + " (repeatable)")
        elif spec.name in ("loop", "stream_density"):
            settings_group.add_argument(flag, dest=spec.name, action=argparse.BooleanOptionalAction,
                                        default=None, help=spec.help)
        else:
            settings_group.add_argument(flag, dest=spec.name, default=None, help=spec.help)
    return parser


def _flags(namespace: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(namespace, spec.name) for spec in FIELDS
            if getattr(namespace, spec.name) is not None}


def _install_signal_handlers(app: App) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if not app.stop.is_set():
            log.info("received %s; finishing requests in flight and writing the summary",
                     signal.Signals(signum).name)
        app.stopped_by_signal = True
        app.stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings: Settings = load(_flags(args), os.environ, Path.cwd(), args.profile,
                                  args.env_file)
    except ClientError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    logging.getLogger().setLevel(settings.log_level)
    if args.check:
        print(json.dumps(settings.to_dict(), indent=2))
        return int(ExitCode.OK)

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
