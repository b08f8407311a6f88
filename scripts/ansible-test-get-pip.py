"""Offline stand-in for ansible-test's get-pip bootstrap (ci-files.testing.ansible.com is not
reachable here): seed pip from Python's bundled wheel, then let it install what was asked."""
import ensurepip
import importlib
import os
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip points pip at an empty config; the real one holds this machine's CA bundle.
os.environ.pop("PIP_CONFIG_FILE", None)
importlib.invalidate_caches()
from pip._internal.cli.main import main

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
