"""Entry point: `python -m ovms_standin --config_path ... --port 9000`."""

from __future__ import annotations

import sys

from .cli import parse
from .server import serve


def main() -> int:
    settings = parse(sys.argv[1:])
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
