"""Every role's README.md is what scripts/role-readmes.py writes from its argument specs.

When a test here fails after a change to a role's meta/argument_specs.yml or meta/readme.yml,
run `python scripts/role-readmes.py` and commit the READMEs it rewrote.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "role-readmes.py"
ROLES = ROOT / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir()) if ROLES.is_dir() else []
FIX = "run `python scripts/role-readmes.py` to regenerate the role READMEs"


def _generator():
    spec = importlib.util.spec_from_file_location("role_readmes", SCRIPT)
    assert spec and spec.loader, f"cannot load {SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_role_is_generated() -> None:
    assert ROLE_DIRS, f"no role with a tasks/ directory under {ROLES}"
    assert [p.name for p in GENERATOR.role_dirs(ROOT)] == [p.name for p in ROLE_DIRS], (
        "the generator must cover every role: each needs meta/argument_specs.yml"
    )


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_readme_is_in_sync_with_the_argument_specs(role: Path) -> None:
    readme = role / "README.md"
    assert readme.is_file(), f"{readme} is missing; {FIX}"
    assert readme.read_text(encoding="utf-8") == GENERATOR.render(role), (
        f"{readme} is out of date with {role.name}/meta/argument_specs.yml or meta/readme.yml; {FIX}"
    )


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_readme_documents_every_entry_point_and_option(role: Path) -> None:
    text = GENERATOR.render(role)
    specs = _yaml(role / "meta" / "argument_specs.yml")["argument_specs"]
    for name, entry in specs.items():
        assert f"### `{name}`" in text, f"entry point {name} of {role.name} is not in its README"
        for option in (entry or {}).get("options") or {}:
            assert f"| `{option}` |" in text, (
                f"option {option} ({name}) of {role.name} is not in its README"
            )


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_example_is_a_play_that_uses_the_role(role: Path) -> None:
    source = _yaml(role / "meta" / "readme.yml")
    assert str(source.get("intro") or "").strip(), f"{role.name}/meta/readme.yml needs an intro"
    plays = yaml.safe_load(source["example"])
    assert isinstance(plays, list) and plays, (
        f"{role.name}/meta/readme.yml: example is not a list of plays"
    )
    assert all(isinstance(play, dict) and "name" in play for play in plays), (
        f"{role.name}/meta/readme.yml: every play of the example needs a name"
    )
    assert f"edge_retail.ovms.{role.name}" in source["example"], (
        f"{role.name}/meta/readme.yml: the example does not use edge_retail.ovms.{role.name}"
    )


def test_markup_becomes_markdown() -> None:
    text = GENERATOR._markup(
        "C(a) O(b=c) V(d) M(e.f.g) I(h) B(i) U(https://x) L(j,https://k) R(l,m)"
    )
    assert text == "`a` `b=c` `d` `e.f.g` *h* **i** <https://x> [j](https://k) l"


def test_table_cells_escape_pipes() -> None:
    row = GENERATOR._option_row("x_dir", {"type": "path", "default": "{{ a | default('b') }}"})
    cells = re.split(r"(?<!\\)\|", row)
    assert "\\|" in row and len(cells) == 8, row
