"""The collection runs from an installed copy, the way a Galaxy user runs it.

The tarball `ansible-galaxy collection build` makes from this checkout is installed offline into
a temporary collections directory (its dependencies, community.docker and friends, are found in
the `ansible` package of the venv, never on a network), and the site playbook runs by its name,
`ansible-playbook edge_retail.ovms.site`, from a directory outside the checkout, against a copy
of the single-system store inventory (this machine, local connection) in check mode. No file of
the checkout is on any Ansible search path: no ansible.cfg of it, no collections path into it.
Only the demo's build products under .cache (model repository, image archives, test video) are
read, as inputs the inventory names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The site check-mode run reads the image archives and the model repository: wait for the
# session builds (tests/conftest.py keeps this file on one worker with the other site runs).
pytestmark = pytest.mark.usefixtures("built_images", "model_repo")

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
VENV_BIN = Path(sys.executable).parent
# The plays of playbooks/site.yml (validate.yml's first): a run that got to the last one went
# through the whole playbook.
SITE_PLAYS = [
    "Validate the store inventory before changing anything",
    "Issue the mutual-TLS certificates on the controller",
    "Install Docker Engine and the check environment",
    "Serve the models",
    "Run the inference clients",
]


def clean_env(bin_dir: Path = VENV_BIN, **extra: str) -> dict[str, str]:
    """The caller's environment without any Ansible setting (make exports a collections path
    into the checkout), with the tools of `bin_dir` (the venv's) first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def build_and_install(base: Path, collections: Path | None = None, bin_dir: Path = VENV_BIN,
                      dependencies: Path | None = None) -> tuple[Path, dict[str, str]]:
    """Build the collection's tarball into base/dist and install it into `collections`
    (default base/collections) with the ansible-galaxy of `bin_dir` (default the venv's).

    Returns the collections directory and an environment whose Ansible sees that directory
    plus the `ansible_collections` of its own Python (sys.path) and, for an ansible-core without
    the `ansible` package, the collections directory `dependencies`; nothing of the checkout.
    """
    collections = collections or base / "collections"
    dist, work = base / "dist", base / "work"
    for d in (dist, collections, work):
        d.mkdir(parents=True, exist_ok=True)
    # An empty configuration: no ansible.cfg of the checkout or of the user is read.
    config = base / "ansible.cfg"
    config.write_text("[defaults]\n")
    search = [str(collections)] + ([str(dependencies)] if dependencies else [])
    env = clean_env(bin_dir, ANSIBLE_CONFIG=str(config),
                    ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(search))
    subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist),
         str(ROOT)],
        check=True, capture_output=True, text=True, env=env, cwd=work, timeout=300,
    )
    tarballs = sorted(dist.glob("edge_retail-ovms-*.tar.gz"))
    assert len(tarballs) == 1, f"expected one tarball in {dist}, got {tarballs}"
    # --offline: dependencies must be satisfied by what is installed (the `ansible` package of
    # the venv holds community.docker and community.crypto); no server is asked.
    proc = subprocess.run(
        [str(bin_dir / "ansible-galaxy"), "collection", "install", "--offline", "-p",
         str(collections), str(tarballs[0])],
        capture_output=True, text=True, env=env, cwd=work, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"offline install failed:\n{proc.stdout}\n{proc.stderr}"
    installed = collections / "ansible_collections/edge_retail/ovms"
    assert (installed / "MANIFEST.json").is_file(), proc.stdout
    assert not installed.is_symlink()
    return collections, env


def local_store_inventory(dest: Path) -> Path:
    """A copy of inventories/local for this run, outside the checkout.

    Modules run under the venv's Python: in check mode docker_engine does not install the
    system's python3-docker and python3-requests, which the community.docker modules need on
    a host that has a Docker Engine already (this machine).
    """
    inv = dest / "inventory"
    shutil.copytree(ROOT / "inventories/local", inv,
                    ignore=shutil.ignore_patterns("tls", "*.retry"))
    host_vars = inv / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / "localhost.yml").write_text(
        f"---\nansible_python_interpreter: {json.dumps(sys.executable)}\n"
    )
    return inv


def needs_demo_cache() -> None:
    """The demo's build products that the local store's inventory names."""
    wanted = [CACHE / "images/standin.tar", CACHE / "images/client.tar",
              CACHE / "media/store-walk.mp4", CACHE / "models/repo/manifest.json"]
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}; run `make images models media` first")


def task_paths(result: dict[str, Any]) -> list[str]:
    """`file:line` of every task the JSON callback reported."""
    return [
        task["task"]["path"]
        for play in result["plays"]
        for task in play["tasks"]
        if task["task"].get("path")
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return build_and_install(tmp_path_factory.mktemp("installed-collection"))


def test_collection_list_shows_only_the_installed_copy(installed):
    collections, env = installed
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
        capture_output=True, text=True, env=env, cwd=collections.parent, check=True, timeout=120,
    )
    listing = json.loads(proc.stdout)
    ours = {path: found["edge_retail.ovms"] for path, found in listing.items()
            if "edge_retail.ovms" in found}
    assert list(ours) == [str(collections / "ansible_collections")], ours
    # Its dependencies come from the venv's `ansible` package.
    deps = {name for path, found in listing.items() for name in found
            if path.startswith(str(Path(sys.prefix)))}
    assert {"community.docker", "community.crypto"} <= deps, listing


def site_in_check_mode(collections: Path, env: dict[str, str], tmp_path: Path,
                       bin_dir: Path = VENV_BIN) -> dict[str, Any]:
    """`ansible-playbook edge_retail.ovms.site` (that of `bin_dir`) in check mode against a copy
    of the local store, from a directory outside the checkout, with the environment
    build_and_install returned. Checks that the whole playbook ran, without a failure, from the
    installed copy in `collections` only; returns the JSON callback's result."""
    needs_demo_cache()
    inv = local_store_inventory(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {
        **env,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        # The inventory reads the demo's build products from here.
        "CACHE_DIR": str(CACHE),
    }
    proc = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "edge_retail.ovms.site", "-i", str(inv), "--check"],
        capture_output=True, text=True, env=env, cwd=run_dir, timeout=1800, check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON result (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    stats = result["stats"]
    assert list(stats) == ["localhost"], stats
    recap = stats["localhost"]
    failed = [f"{task['task']['name']}: {res.get('msg', '')}"
              for play in result["plays"] for task in play["tasks"]
              for res in task["hosts"].values() if res.get("failed") or res.get("unreachable")]
    assert recap["failures"] == 0 and recap["unreachable"] == 0, (recap, failed, proc.stderr[-3000:])
    assert recap["ok"] > 0, recap
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [play["play"]["name"] for play in result["plays"]] == SITE_PLAYS

    # Every task ran from the installed copy (roles and the playbooks' own tasks); nothing
    # from the checkout.
    installed_copy = str(collections / "ansible_collections/edge_retail/ovms") + "/"
    paths = task_paths(result)
    assert any("/roles/" in p for p in paths), "no role task reported"
    outside = sorted({p.rsplit(":", 1)[0] for p in paths if not p.startswith(installed_copy)})
    assert not outside, f"tasks from outside {installed_copy}: {outside}"
    return result


def test_site_from_installed_copy_in_check_mode(installed, tmp_path: Path):
    collections, env = installed
    result = site_in_check_mode(collections, env, tmp_path)
    assert result["stats"]["localhost"]["ok"] > 0
