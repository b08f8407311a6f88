"""Every role documents exactly the variables it defaults, all prefixed with its name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks").is_dir()) if ROLES.is_dir() else []


def _yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} does not hold a YAML mapping"
    return data


def _spec_options(role: Path) -> set[str]:
    path = role / "meta" / "argument_specs.yml"
    assert path.is_file(), f"{path} is missing: every role documents its variables there"
    specs = _yaml(path).get("argument_specs") or {}
    assert "main" in specs, f"{path} has no argument_specs.main entry point"
    return set((specs["main"].get("options") or {}).keys())


def _default_keys(role: Path) -> set[str]:
    path = role / "defaults" / "main.yml"
    if not path.is_file():
        return set()
    return set(_yaml(path).keys())


def test_roles_exist() -> None:
    assert ROLE_DIRS, f"no role with a tasks/ directory under {ROLES}"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_defaults_and_argument_specs_list_the_same_variables(role: Path) -> None:
    defaults = _default_keys(role)
    options = _spec_options(role)
    assert defaults - options == set(), "defaults/main.yml keys missing from argument_specs.yml"
    assert options - defaults == set(), "argument_specs.yml options missing from defaults/main.yml"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_variables_start_with_the_role_name(role: Path) -> None:
    names = _default_keys(role) | _spec_options(role)
    unprefixed = sorted(n for n in names if not n.startswith(f"{role.name}_"))
    assert unprefixed == [], f"variables of role {role.name} without the '{role.name}_' prefix"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_every_option_is_described_and_typed(role: Path) -> None:
    path = role / "meta" / "argument_specs.yml"
    options = (_yaml(path)["argument_specs"]["main"].get("options") or {}).items()
    incomplete = sorted(
        n for n, spec in options if not spec.get("description") or "type" not in spec
    )
    assert incomplete == [], f"options of {path} without a description or a type"
