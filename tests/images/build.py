"""Build every test image without a registry, and save the archives the roles push to hosts.

Images (all built from a Debian root made with debootstrap, never pulled):
  base     edge-retail/debian-base:bookworm   minbase + python3, python3-venv, ca-certificates
  host     edge-retail/store-host:bookworm    systemd store host for molecule
  standin  edge-retail/ovms-standin:test      the OVMS stand-in (test fixture)
  client   edge-retail/ovms-client:0.1.0      the packaged inference client
  proxy    edge-retail/ovms-proxy:1.22-1      Debian's nginx, the mTLS proxy in front of OVMS
                                              (images/proxy, shipped for playbooks/images.yml)

Each image carries a label with the sha256 of everything that went into it; an image whose
label matches is not rebuilt, and an archive whose recorded image ID matches is not re-saved,
so a second run takes seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")).resolve()
INPUTS_LABEL = "org.edge-retail.inputs-sha256"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# ocl-icd-libopencl1: OpenVINO's GPU plugin does not load without the OpenCL loader. OVMS's -gpu
# image ships it; with it the stand-in can serve AUTO:GPU,CPU on a host without a GPU, as OVMS does.
# libusb-1.0-0, libudev1: the client's pyrealsense2 loads them (its Dockerfile installs them from a
# package index only when the base image lacks them, as the public python image does).
BASE_PACKAGES = "python3,python3-venv,ca-certificates,ocl-icd-libopencl1,libusb-1.0-0,libudev1"


@dataclass
class Spec:
    key: str
    name: str
    context: Path | None = None
    base: str | None = None
    wheels: str | None = None
    extra: dict[str, Path] = field(default_factory=dict)


SPECS = [
    Spec("base", "edge-retail/debian-base:bookworm"),
    Spec("host", "edge-retail/store-host:bookworm", ROOT / "tests/images/store-host", "base"),
    Spec(
        "standin",
        "edge-retail/ovms-standin:test",
        ROOT / "tests/ovms_standin",
        "base",
        "standin",
        {"requirements.txt": ROOT / "requirements/standin.txt"},
    ),
    Spec("client", "edge-retail/ovms-client:0.1.0", ROOT / "client", "base", "client"),
    Spec("proxy", "edge-retail/ovms-proxy:1.22-1", ROOT / "images/proxy", "base"),
]


def log(msg: str) -> None:
    print(f"build-images: {msg}", flush=True)


def tree_digest(paths: dict[str, Path], extra: str = "") -> str:
    """Digest of file names and contents below each path, ignoring caches and build output."""
    h = hashlib.sha256(extra.encode())
    for prefix, top in sorted(paths.items()):
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(top.parent if top.is_file() else top)
            # Tool caches (a local `ruff check` writes client/.ruff_cache) are not inputs: counting
            # them rebuilt the client image, and recreated the demo's client, after a lint run.
            if any(part in {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "build"}
                   or part.endswith(".egg-info") for part in rel.parts):
                continue
            h.update(f"{prefix}/{rel}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def image_label(client: docker.DockerClient, name: str) -> tuple[str | None, str | None]:
    try:
        img = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None, None
    return img.id, (img.labels or {}).get(INPUTS_LABEL)


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True)


def wheelhouse(kind: str) -> Path:
    """Wheels for an image's venv, built on this machine so the image build needs no network."""
    out = CACHE / "wheels" / kind
    if kind == "standin":
        source = ROOT / "requirements/standin.txt"
        digest = tree_digest({"req": source})
        args = ["-r", str(source)]
    else:
        digest = tree_digest({"client": ROOT / "client"})
        # [tfs]: ovmsclient is an optional extra, and the image keeps the TFS API working;
        # [realsense]: pyrealsense2, for RealSense cameras and recordings.
        args = [f"{ROOT / 'client'}[tfs,realsense]"]
    stamp = out / ".inputs.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return out
    log(f"building the {kind} wheelhouse in {out}")
    if kind == "client":
        # The client's own wheel changes with its sources; drop the stale one.
        for old in out.glob("edge_retail_ovms_client-*.whl"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    pip("wheel", "--wheel-dir", str(out), *args)
    stamp.write_text(digest)
    return out


def build_rootfs(client: docker.DockerClient, spec: Spec) -> None:
    digest = tree_digest({}, f"debootstrap minbase bookworm {BASE_PACKAGES}")
    _image_id, label = image_label(client, spec.name)
    if label == digest:
        log(f"{spec.name} is up to date")
        return
    rootfs = CACHE / "rootfs" / "bookworm"
    done = rootfs.with_suffix(".done")
    if not done.is_file() or done.read_text() != digest:
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        log(f"debootstrap bookworm into {rootfs} (a few minutes)")
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
             str(rootfs), DEBIAN_MIRROR],
            check=True, stdout=subprocess.DEVNULL,
        )
        done.write_text(digest)
    log(f"importing {spec.name}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "import", "-c", f"LABEL {INPUTS_LABEL}={digest}", "-c", 'CMD ["/bin/bash"]',
         "-", spec.name],
        stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL,
    )
    if tar.wait() != 0:
        raise SystemExit(f"tar of {rootfs} failed")


def build_dockerfile(client: docker.DockerClient, spec: Spec, names: dict[str, str]) -> None:
    assert spec.context is not None and spec.base is not None
    base_id, _base_label = image_label(client, names[spec.base])
    if base_id is None:
        raise SystemExit(f"base image {names[spec.base]} is missing; build 'base' first")
    sources = {"context": spec.context, **spec.extra}
    wheels = wheelhouse(spec.wheels) if spec.wheels else None
    wheel_names = "\n".join(sorted(p.name for p in wheels.glob("*.whl"))) if wheels else ""
    digest = tree_digest(sources, f"{base_id}\n{wheel_names}")
    _image_id, label = image_label(client, spec.name)
    if label == digest:
        log(f"{spec.name} is up to date")
        return
    ctx = CACHE / "build" / spec.key
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(spec.context, ctx, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    for dest, src in spec.extra.items():
        shutil.copy2(src, ctx / dest)
    if wheels:
        (ctx / "wheels").mkdir()
        for whl in wheels.glob("*.whl"):
            os.link(whl, ctx / "wheels" / whl.name)
    log(f"building {spec.name}")
    started = time.monotonic()
    try:
        client.images.build(
            path=str(ctx), tag=spec.name, buildargs={"BASE_IMAGE": names[spec.base]},
            labels={INPUTS_LABEL: digest}, rm=True, forcerm=True,
        )
    except docker.errors.BuildError as exc:
        for chunk in exc.build_log:
            sys.stderr.write(chunk.get("stream", "") or chunk.get("error", ""))
        raise SystemExit(f"building {spec.name} failed: {exc.msg}") from None
    log(f"built {spec.name} in {time.monotonic() - started:.0f} s")


def save(client: docker.DockerClient, spec: Spec) -> Path:
    """Write the archive a role copies to a host, unless it already holds this image ID."""
    archive = CACHE / "images" / f"{spec.key}.tar"
    id_file = archive.with_suffix(".id")
    image = client.images.get(spec.name)
    if archive.is_file() and id_file.is_file() and id_file.read_text() == image.id:
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_suffix(".tar.part")
    with tmp.open("wb") as fh:
        for chunk in image.save(named=True):
            fh.write(chunk)
    os.replace(tmp, archive)
    id_file.write_text(image.id)
    log(f"saved {spec.name} to {archive}")
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The empty list in choices lets "no names given" pass argparse's check.
    parser.add_argument("only", nargs="*", choices=[[], *(s.key for s in SPECS)],
                        help="images to build (default: all); their bases are built too")
    parser.add_argument("--no-save", action="store_true", help="do not write image archives")
    args = parser.parse_args(argv)
    client = docker.from_env(timeout=600)
    names = {s.key: s.name for s in SPECS}
    wanted = set(args.only or names)
    for spec in SPECS:
        if spec.key != "base" and spec.key not in wanted:
            continue
        if spec.context is not None and not spec.context.joinpath("Dockerfile").is_file():
            log(f"skipping {spec.name}: {spec.context / 'Dockerfile'} does not exist yet")
            continue
        if spec.key == "base":
            build_rootfs(client, spec)
        else:
            build_dockerfile(client, spec, names)
    index: dict[str, dict[str, str]] = {}
    for spec in SPECS:
        image_id, _label = image_label(client, spec.name)
        if image_id is None:
            continue
        entry = {"name": spec.name, "id": image_id}
        if not args.no_save:
            entry["archive"] = str(save(client, spec))
        index[spec.key] = entry
    (CACHE / "images").mkdir(parents=True, exist_ok=True)
    # Written only when it changes, and by a rename: tests read it while another build runs.
    path = CACHE / "images" / "index.json"
    text = json.dumps(index, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        part = path.with_name(f"index.json.{os.getpid()}")
        part.write_text(text)
        os.replace(part, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
