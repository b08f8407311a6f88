"""The collection as a user installs it: the tarball `ansible-galaxy collection build` makes.

It must hold what a user runs (roles, plugins, playbooks, docs, the models tool and catalog, the
client's sources) and none of the test bed or build output, and Galaxy's importer
(galaxy-importer, run offline: no ansible-test, no container engine, ansible-lint --offline)
must accept it with zero errors.

galaxy.yml has an empty `repository` because the project has no public repository address yet,
and Galaxy's importer refuses a collection without one before it checks anything else. So the
importer runs twice: on the tarball as built, where that must be its only error, and on a copy
whose MANIFEST.json names a repository, as a publish with a real address would, where it must
find nothing at all. Once galaxy.yml has a real `repository`, the first run must be clean too.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
VENV_BIN = Path(sys.executable).parent

# Paths (fnmatch patterns) that must stay out of the tarball: the test bed and build output.
FORBIDDEN = [
    "tests",
    "tests/*",
    "molecule",
    "molecule/*",
    "scripts",
    "scripts/*",
    "benchmarks",
    "benchmarks/*",
    "fleet-reports",
    "fleet-reports/*",
    ".*",
    "*/.*cache*",
    "Makefile",
    "ruff.toml",
    "galaxy.yml",
    "requirements/python.txt",
    "requirements/standin.txt",
    "client/build",
    "client/build/*",
    "client/dist",
    "client/dist/*",
    "client/wheels/*",
    "*.egg-info",
    "*.egg-info/*",
    "*__pycache__*",
    "*.pyc",
    "*.tar.gz",
    "*.tar",
    "inventories/*/tls",
    "inventories/*/tls/*",
]

# What a user runs and reads: every file of these must be in the tarball.
SHIPPED_TREES = [
    "roles",
    "plugins",
    "playbooks",
    "docs",
    "models",
    "client",
    "images",
    "inventories",
    "meta",
    "changelogs",
]
SHIPPED_FILES = [
    "README.md",
    "LICENSE",
    "CHANGELOG.rst",
    "client/Dockerfile",
    "client/pyproject.toml",
    "client/README.md",
    "docs/architecture.md",
    "docs/operator-guide.md",
    "playbooks/site.yml",
    "playbooks/rollout.yml",
    "playbooks/validate.yml",
    "models/catalog.yml",
    "models/fetch.py",
    "meta/runtime.yml",
]

IMPORTER_CONFIG = """\
[galaxy-importer]
# Offline: no ansible-test (it needs a container engine and the network), ansible-lint
# --offline, ansible-doc on the extracted collection.
run_ansible_test = False
ansible_test_local_image = False
local_image_docker = False
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
check_changelog = True
check_required_tags = True
log_level_main = INFO
"""

STAND_IN_REPOSITORY = "https://example.com/edge_retail/ovms"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("ANSIBLE_CONFIG", None)
    return env


def _working_tree_files() -> list[str]:
    """The files a user gets from these trees, as the working tree holds them."""
    out = []
    for tree in SHIPPED_TREES:
        for path in (ROOT / tree).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(rel, p) for p in FORBIDDEN):
                out.append(rel)
    return sorted(out)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    exe = shutil.which("ansible-galaxy", path=_env()["PATH"])
    assert exe, "ansible-galaxy not found; run through `make test` or with the project venv on PATH"
    result = subprocess.run(
        [exe, "collection", "build", "--output-path", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    assert result.returncode == 0, (
        f"ansible-galaxy collection build failed:\n{result.stdout}{result.stderr}"
    )
    tarball = out / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    assert tarball.is_file(), f"no {tarball.name} in {out}: {result.stdout}"
    return tarball


def _members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_tarball_holds_what_a_user_runs(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    members = _members(artifact)
    files = sorted(name for name, m in members.items() if m.isfile())
    with capsys.disabled():
        print(
            f"\n{artifact.name}: {artifact.stat().st_size} bytes, {len(files)} files, "
            f"{len(members)} entries"
        )
    missing = sorted(set(SHIPPED_FILES + _working_tree_files()) - set(files))
    assert missing == [], "user-facing files missing from the tarball (build_ignore in galaxy.yml)"
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
    for role in roles:
        for part in ("README.md", "meta/argument_specs.yml", "meta/main.yml", "tasks/main.yml"):
            assert f"roles/{role}/{part}" in files, f"roles/{role}/{part} is not in the tarball"


def test_tarball_holds_no_test_bed_or_build_output(artifact: Path) -> None:
    members = _members(artifact)
    leaked = sorted(
        name
        for name in members
        if name not in ("MANIFEST.json", "FILES.json")
        and any(fnmatch.fnmatch(name, pattern) for pattern in FORBIDDEN)
    )
    assert leaked == [], (
        "test bed or build output in the tarball; extend build_ignore in galaxy.yml"
    )


def test_manifest_matches_galaxy_yml(artifact: Path) -> None:
    with tarfile.open(artifact) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert manifest["license"] == ["Apache-2.0"]
    assert manifest["dependencies"] == GALAXY["dependencies"]
    for dependency, spec in manifest["dependencies"].items():
        assert "<" in spec, f"{dependency} {spec}: give it an upper bound"
    for key in ("repository", "documentation", "homepage", "issues"):
        value = manifest.get(key) or ""
        assert "example." not in value and "invalid" not in value, (
            f"{key} is a placeholder: {value}"
        )


def _import(
    tarball: Path, workdir: Path
) -> tuple[subprocess.CompletedProcess[str], list[str], dict]:
    """Run galaxy-importer's command line on the tarball; its ERROR lines and its result."""
    config = workdir / "galaxy-importer.cfg"
    config.write_text(IMPORTER_CONFIG, encoding="utf-8")
    env = _env()
    env["GALAXY_IMPORTER_CONFIG"] = str(config)
    env["ANSIBLE_LOCAL_TEMP"] = str(workdir / "ansible-tmp")
    # The importer writes importer_result.json into its working directory.
    result = subprocess.run(
        [sys.executable, "-m", "galaxy_importer.main", str(tarball)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    errors = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(("ERROR", "CRITICAL"))
    ]
    result_file = workdir / "importer_result.json"
    data = json.loads(result_file.read_text(encoding="utf-8")) if result_file.is_file() else {}
    return result, errors, data


def _with_repository(tarball: Path, out: Path) -> Path:
    """A copy of the tarball whose MANIFEST.json names a repository (FILES.json is unchanged)."""
    copy = out / tarball.name
    with tarfile.open(tarball) as src, tarfile.open(copy, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "MANIFEST.json":
                manifest = json.loads(data)
                manifest["collection_info"]["repository"] = STAND_IN_REPOSITORY
                data = json.dumps(manifest, indent=4).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return copy


def test_galaxy_importer_on_the_tarball_as_built(artifact: Path, tmp_path: Path) -> None:
    result, errors, _log = _import(artifact, tmp_path)
    if GALAXY.get("repository"):
        assert errors == [] and result.returncode == 0, result.stdout + result.stderr
    else:
        expected = (
            "ERROR: The import failed for the following reason: "
            "Invalid collection metadata. 'repository' is required"
        )
        assert errors == [expected], result.stdout + result.stderr
        warnings.warn(
            "galaxy.yml has no repository address: Galaxy refuses to publish the collection "
            "until it names the project's real repository",
            stacklevel=1,
        )


def test_galaxy_importer_accepts_the_collection(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tarball = artifact if GALAXY.get("repository") else _with_repository(artifact, tmp_path)
    result, errors, data = _import(tarball, tmp_path)
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    with capsys.disabled():
        print(f"\ngalaxy-importer: {len(errors)} errors, {len(warnings)} warnings")
        for line in warnings:
            print(f"  {line}")
    assert result.returncode == 0 and errors == [], output
    assert "Importer processing completed successfully" in output, output
    # An execution environment's dependency files must ship with it.
    assert not [w for w in warnings if "execution-environment.yml" in w], output

    contents = {(c["content_type"], c["name"]) for c in data["contents"]}
    roles = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()}
    modules = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert {("role", r) for r in roles} <= contents, f"roles the importer did not find: {contents}"
    assert {("module", m) for m in modules} <= contents, (
        f"modules the importer did not find: {contents}"
    )
    assert (
        data["requires_ansible"]
        == yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))[
            "requires_ansible"
        ]
    )
