"""Fetch the catalog's models and build an OVMS model repository; see --help."""

import sys
from pathlib import Path

# Runs from an installed collection, where the package is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ovms_models_tool.cli import main

if __name__ == "__main__":
    sys.exit(main())
