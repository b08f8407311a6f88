"""What the controller needs, declared for an execution environment, and the Python floor.

`ansible-builder create` renders the build context of execution-environment.yml; the context
must carry the collection's Python requirements (meta/ee-requirements.txt), system packages
(bindep.txt) and collections (requirements.yml, the ranges of galaxy.yml). The code that runs
on the controller may import only what those declare.

The models tool (models/fetch.py) runs under the Python that runs Ansible on the controller,
down to the lowest Python of the lowest ansible-core meta/runtime.yml's requires_ansible admits
(the one place the supported range is stated), so the tool must work there: its sources are
checked for syntax and standard-library names newer than that Python, and the tool really runs
under that interpreter (Debian 12's /usr/bin/python3.11 for ansible-core 2.18), offline, against
a local HTTP server. test_ansible_core_floor.py runs the playbooks on that ansible-core.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The lowest controller Python of each ansible-core release (its "Python >=" on PyPI).
CONTROLLER_PYTHON_FLOOR = {
    (2, 15): (3, 9), (2, 16): (3, 10), (2, 17): (3, 10), (2, 18): (3, 11),
    (2, 19): (3, 11), (2, 20): (3, 12), (2, 21): (3, 12),
}

# Standard-library names by the Python version that added them (what an older controller
# lacks at import or call time). Module names, `module.name` attributes and builtins.
NEW_IN: dict[tuple[int, int], set[str]] = {
    (3, 10): {"itertools.pairwise", "typing.ParamSpec", "typing.TypeAlias",
              "typing.TypeGuard", "typing.Concatenate", "anext", "aiter"},
    (3, 11): {"tomllib", "wsgiref.types", "typing.Self", "typing.LiteralString", "typing.Never",
              "typing.assert_never", "typing.assert_type", "typing.reveal_type",
              "typing.Required", "typing.NotRequired", "typing.TypeVarTuple", "typing.Unpack",
              "typing.dataclass_transform", "ExceptionGroup", "BaseExceptionGroup",
              "asyncio.TaskGroup", "asyncio.timeout", "asyncio.Runner", "enum.StrEnum",
              "enum.verify", "enum.member", "enum.nonmember", "enum.global_enum", "datetime.UTC",
              "hashlib.file_digest", "contextlib.chdir", "operator.call", "re.NOFLAG"},
    (3, 12): {"typing.override", "typing.TypeAliasType", "itertools.batched",
              "calendar.Month", "calendar.Day", "collections.abc.Buffer", "os.path.splitroot",
              "pathlib.Path.walk", "sys.monitoring", "tempfile.TemporaryDirectory.delete"},
    (3, 13): {"warnings.deprecated", "copy.replace", "typing.ReadOnly", "typing.TypeIs",
              "typing.NoDefault", "typing.get_protocol_members", "typing.is_protocol"},
}
# Syntax that ast.parse's feature_version does not refuse on every interpreter
# (ast.TypeAlias, the `type` statement of 3.12, exists from 3.12 on).
NEW_SYNTAX: dict[type, tuple[int, int]] = {ast.TryStar: (3, 11)}
if hasattr(ast, "TypeAlias"):
    NEW_SYNTAX[ast.TypeAlias] = (3, 12)

# Code that runs on the controller: the models tool, the filter plugins and the modules the
# roles delegate to localhost, with the module_utils they use. (model_status, model_infer and
# client_results run on the hosts, in the check venv ovms_check_env builds there.)
CONTROLLER_CODE = [
    *sorted((ROOT / "models").rglob("*.py")),
    *sorted((ROOT / "plugins/filter").glob("*.py")),
    ROOT / "plugins/modules/image_archive_info.py",
    ROOT / "plugins/modules/fleet_report.py",
    ROOT / "plugins/module_utils/image_archive.py",
]
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"yaml": "pyyaml"}
# Provided by ansible-core itself, or the collection's own code.
NOT_REQUIREMENTS = {"ansible", "ansible_collections", "ovms_models_tool", "openvino.runtime"}


def requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def requires_ansible_floor() -> tuple[int, int]:
    spec = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())["requires_ansible"]
    found = re.search(r">=\s*(\d+)\.(\d+)", spec)
    assert found, f"meta/runtime.yml requires_ansible {spec!r} has no lower bound"
    return int(found.group(1)), int(found.group(2))


def python_floor() -> tuple[int, int]:
    core = requires_ansible_floor()
    assert core in CONTROLLER_PYTHON_FLOOR, (
        f"requires_ansible starts at ansible-core {core}; add its controller Python to "
        "CONTROLLER_PYTHON_FLOOR")
    return CONTROLLER_PYTHON_FLOOR[core]


def third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("ee-context")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
         "--context", str(context), "--output-filename", "Containerfile"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


def test_context_holds_python_requirements(build_context: Path):
    declared = requirements(ROOT / "meta/ee-requirements.txt")
    rendered = requirements(build_context / "_build/requirements.txt")
    assert {str(r) for r in rendered} == {str(r) for r in declared}
    names = {r.name.lower() for r in rendered}
    # The models tool reads its catalog and converts models; ovms_tls's certificates.
    assert {"pyyaml", "openvino", "cryptography"} <= names


def test_controller_code_imports_only_declared_packages():
    declared = {r.name.lower() for r in requirements(ROOT / "meta/ee-requirements.txt")}
    undeclared = {}
    for path in CONTROLLER_CODE:
        for name in third_party_imports(path) - NOT_REQUIREMENTS:
            if DISTRIBUTIONS.get(name, name).lower() not in declared:
                undeclared.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported on the controller, not in meta/ee-requirements.txt: {undeclared}"


def test_venv_satisfies_the_declared_requirements():
    """The tests here run with what the execution environment declares."""
    unmet = []
    for req in requirements(ROOT / "meta/ee-requirements.txt"):
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{req} (venv has {version})")
    assert not unmet, unmet


def test_context_holds_system_requirements(build_context: Path):
    rendered = (build_context / "_build/bindep.txt").read_text()
    assert rendered == (ROOT / "bindep.txt").read_text()
    entries = [line.split("#", 1)[0].split() for line in rendered.splitlines()]
    packages = {e[0]: " ".join(e[1:]) for e in entries if e}
    assert packages.get("openssh-clients") == "[platform:rpm]"
    assert packages.get("openssh-client") == "[platform:dpkg]"


def test_context_holds_the_collections_of_galaxy_yml(build_context: Path):
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    for source in (ROOT / "requirements.yml", build_context / "_build/requirements.yml"):
        collections = yaml.safe_load(source.read_text())["collections"]
        assert {c["name"]: c["version"] for c in collections} == galaxy, source
    containerfile = (build_context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "-r requirements.yml" in containerfile
    # A public base image stays the default; a build can point EE_BASE_IMAGE elsewhere.
    assert re.search(r'^ARG EE_BASE_IMAGE="quay\.io/ansible/[^"]+"$', containerfile, re.MULTILINE), (
        containerfile.splitlines()[0])


def test_ee_ansible_core_is_the_tested_one_and_within_requires_ansible():
    """The EE pins the ansible-core the tests here run, which requires_ansible admits, on a
    Python that ansible-core supports."""
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    deps = ee["dependencies"]
    core = Requirement(deps["ansible_core"]["package_pip"])
    assert core.name == "ansible-core"
    tested = metadata.version("ansible-core")
    assert core.specifier.contains(tested), f"venv's ansible-core {tested} not in {core}"
    floor = requires_ansible_floor()
    assert tuple(int(x) for x in tested.split(".")[:2]) >= floor
    python = re.fullmatch(r"/usr/bin/python(\d+)\.(\d+)", deps["python_interpreter"]["python_path"])
    assert python, deps["python_interpreter"]
    ee_python = (int(python.group(1)), int(python.group(2)))
    core_minor = tuple(int(x) for x in tested.split(".")[:2])
    assert ee_python >= CONTROLLER_PYTHON_FLOOR[core_minor]
    assert deps["python_interpreter"]["package_system"] == f"python{ee_python[0]}.{ee_python[1]}"


# A supported ansible-core range written out: "2.18 or newer", ">=2.18", "2.18+".
RANGE_STATEMENT = re.compile(
    r"\b2\.\d+(\.\d+)? or (newer|later|above)\b|>=\s*2\.\d+|\b2\.\d+\+", re.IGNORECASE)


def test_supported_range_is_stated_only_in_runtime_yml():
    """requires_ansible is the one statement of the range: the roles' min_ansible_version (which
    Galaxy and ansible-lint want) is its lower bound, and the docs refer to it rather than
    repeating versions that would drift."""
    floor = requires_ansible_floor()
    metas = sorted((ROOT / "roles").glob("*/meta/main.yml"))
    assert metas
    versions = {str(m.relative_to(ROOT)): yaml.safe_load(m.read_text())["galaxy_info"]
                ["min_ansible_version"] for m in metas}
    assert set(versions.values()) == {f"{floor[0]}.{floor[1]}"}, versions
    docs = [ROOT / "README.md", ROOT / "galaxy.yml", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "roles").glob("*/README.md"))]
    restated = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in docs
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "ansible" in line.lower() and RANGE_STATEMENT.search(line)
    ]
    assert not restated, f"state the range as meta/runtime.yml's requires_ansible: {restated}"


# --- the models tool on the oldest controller Python requires_ansible admits ---------------


def _under_type_checking(tree: ast.AST) -> set[int]:
    """ids of nodes inside `if TYPE_CHECKING:` blocks (never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _used_names(tree: ast.AST) -> set[str]:
    """Dotted names the code imports or reads: modules, `from m import n` as m.n, attributes
    of imported modules, bare names (builtins)."""
    skipped = _under_type_checking(tree)
    aliases: dict[str, str] = {}
    used: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                used.add(alias.name)
                aliases[(alias.asname or alias.name).split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            used.add(node.module)
            for alias in node.names:
                used.add(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Name):
            used.add(aliases.get(node.id, node.id))
        elif isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                dotted = [aliases[value.id], *reversed(parts)]
                used.update(".".join(dotted[:i]) for i in range(2, len(dotted) + 1))
    return used


@pytest.mark.parametrize("path", sorted((ROOT / "models").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_models_tool_source_fits_python_floor(path: Path):
    floor = python_floor()
    source = path.read_text()
    tree = ast.parse(source, filename=str(path), feature_version=floor)
    too_new = sorted(
        f"{type(node).__name__} (Python {'.'.join(map(str, ver))}) at line {node.lineno}"
        for node in ast.walk(tree)
        for kind, ver in NEW_SYNTAX.items()
        if isinstance(node, kind) and ver > floor
    )
    used = _used_names(tree)
    too_new += sorted(
        f"{name} (Python {'.'.join(map(str, ver))})"
        for ver, names in NEW_IN.items() if ver > floor
        for name in names & used
    )
    assert not too_new, (
        f"{path.relative_to(ROOT)} runs on the controller's Python, down to "
        f"{'.'.join(map(str, floor))} (ansible-core {requires_ansible_floor()}): {too_new}")


def find_interpreter(version: tuple[int, int]) -> str | None:
    """A working pythonX.Y on this machine, if any (PATH, pyenv's versions, /usr)."""
    name = f"python{version[0]}.{version[1]}"
    candidates = [shutil.which(name), f"/usr/bin/{name}", f"/usr/local/bin/{name}"]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version[0]}.{version[1]}.*/bin/{name}"))
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        proc = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip() == str(version):
            return candidate
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_models_tool_runs_on_python_floor(tmp_path: Path):
    """fetch.py under the oldest controller Python: list the catalog, then download a model
    from a local HTTP server into a repository, then a second run that does nothing."""
    floor = python_floor()
    python = find_interpreter(floor)
    assert python, (f"no Python {floor[0]}.{floor[1]} on this machine, the lowest controller "
                    f"Python of ansible-core {requires_ansible_floor()} (requires_ansible)")
    # PyYAML only, from the venv: without its compiled part it runs as pure Python anywhere.
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "yaml").symlink_to(Path(yaml.__file__).parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(deps), PYTHONDONTWRITEBYTECODE="1", NO_PROXY="*")

    served = tmp_path / "served"
    served.mkdir()
    model = served / "detector.onnx"
    model.write_bytes(b"not really onnx, served as fetched\n" * 100)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        catalog = tmp_path / "catalog.yml"
        url = f"http://127.0.0.1:{server.server_address[1]}/detector.onnx"
        sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
        entry = {"name": "tiny", "version": 3, "format": "onnx",
                 "source": {"type": "url", "files": [{"url": url, "sha256": sha256}]}}
        catalog.write_text(yaml.safe_dump({"models": [entry]}))
        tool = [python, str(ROOT / "models/fetch.py"), "--catalog", str(catalog)]
        repo_args = ["--cache", str(tmp_path / "cache"), "--repo", str(tmp_path / "repo")]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run([*tool, *args], capture_output=True, text=True, env=env,
                                  timeout=300, check=False)
            assert proc.returncode == 0, f"{' '.join(tool + list(args))}:\n{proc.stderr}"
            return proc

        assert run("--list").stdout.startswith("tiny\tversion 3\tonnx (served as is)")
        assert "tiny: built version 3" in run(*repo_args).stdout
        assert "nothing to do" in run(*repo_args).stdout
    finally:
        server.shutdown()
        server.server_close()
    manifest = json.loads((tmp_path / "repo/manifest.json").read_text())
    assert list(manifest["models"]["tiny"]["files"]) == ["tiny/3/model.onnx"]
    assert (tmp_path / "repo/tiny/3/model.onnx").read_bytes() == model.read_bytes()
