"""What the offline image builds count as an image's inputs (tests/images/build.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BUILD = Path(__file__).resolve().parents[1] / "images" / "build.py"


def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_caches_and_build_output_are_not_inputs_and_sources_are(tmp_path: Path) -> None:
    digest = build_module().tree_digest
    source = tmp_path / "client"
    (source / "src").mkdir(parents=True)
    (source / "src/app.py").write_text("print('hello')\n")
    before = digest({"client": source})
    for cache in (".ruff_cache/0.17.5/123", ".mypy_cache/3.11/app.json", ".pytest_cache/v/x",
                  "src/__pycache__/app.pyc", "build/lib/app.py", "src/client.egg-info/PKG-INFO"):
        (source / cache).parent.mkdir(parents=True, exist_ok=True)
        (source / cache).write_text("written by a tool")
    assert digest({"client": source}) == before
    (source / "src/app.py").write_text("print('changed')\n")
    assert digest({"client": source}) != before
