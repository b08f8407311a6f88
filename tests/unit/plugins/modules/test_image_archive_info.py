"""image_archive_info on archives shaped like `docker save` output (classic and OCI layouts)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge_retail.ovms.plugins.module_utils.image_archive import (
    normalize_reference,
)
from ansible_collections.edge_retail.ovms.plugins.modules import image_archive_info

CONFIG = "7b33650419f6b68ad51784d1935c0c7e6dda53ab04010e059ceee7d3ed77b60f"
OTHER = "318b58af6634bdbbf62e6addd5e264a9d8874428c80f8d9d3ba9645bb2715f83"
INDEX_DIGEST = "sha256:" + "ab" * 32


def make_archive(path: Path, files: dict[str, object]) -> Path:
    with tarfile.open(path, "w") as archive:
        archive.addfile(tarfile.TarInfo("layer/"), None)
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def run(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        image_archive_info.main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed"))
    return result


def test_classic_archive_gives_the_config_digest(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = make_archive(tmp_path / "proxy.tar", {"manifest.json": [
        {"Config": f"{CONFIG}.json", "RepoTags": ["edge-retail/ovms-proxy:1.22-1"]}]})
    result = run(capsys, path=str(path), name="edge-retail/ovms-proxy", tag="1.22-1")
    assert result["changed"] is False
    assert result["repo_tags"] == ["edge-retail/ovms-proxy:1.22-1"]
    assert result["image_ids"] == [f"sha256:{CONFIG}"]
    # What a host needs to copy it (container_image checks its free space against this).
    assert result["size"] == path.stat().st_size


def test_oci_archive_also_gives_the_manifest_digest(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = make_archive(tmp_path / "ovms.tar", {
        "manifest.json": [{"Config": f"blobs/sha256/{CONFIG}",
                           "RepoTags": ["openvino/model_server:2026.4.1"]}],
        "index.json": {"schemaVersion": 2, "manifests": [{"digest": INDEX_DIGEST}]},
    })
    result = run(capsys, path=str(path), name="docker.io/openvino/model_server", tag="2026.4.1")
    assert result["image_ids"] == [f"sha256:{CONFIG}", INDEX_DIGEST]


def test_multi_image_archive_picks_the_tagged_image(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = make_archive(tmp_path / "two.tar", {"manifest.json": [
        {"Config": f"{CONFIG}.json", "RepoTags": ["a/one:1"]},
        {"Config": f"{OTHER}.json", "RepoTags": ["a/two:2"]}]})
    result = run(capsys, path=str(path), name="a/two", tag="2")
    assert result["image_ids"] == [f"sha256:{OTHER}"]
    assert result["config_ids"] == [f"sha256:{CONFIG}", f"sha256:{OTHER}"]


def test_archive_without_the_tag_fails_listing_what_it_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_archive(tmp_path / "old.tar", {"manifest.json": [
        {"Config": f"{CONFIG}.json", "RepoTags": ["openvino/model_server:2026.3"]}]})
    result = run(capsys, path=str(path), name="openvino/model_server", tag="2026.4.1")
    assert result["failed"] is True
    assert result["msg"] == (f"{path} does not hold openvino/model_server:2026.4.1; it holds "
                             "openvino/model_server:2026.3")


@pytest.mark.parametrize(("files", "reason"), [
    ({"other.json": {}}, "no manifest.json with at least one image"),
    ({"manifest.json": b"{not json"}, "manifest.json in the archive is not JSON"),
    ({"manifest.json": [{"RepoTags": []}]}, "an entry of manifest.json has no Config"),
    ({"manifest.json": [{"Config": "config.json"}]}, "not a sha256 digest"),
])
def test_malformed_archives_fail_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, object],
        reason: str) -> None:
    path = make_archive(tmp_path / "bad.tar", files)
    result = run(capsys, path=str(path))
    assert result["failed"] is True
    assert result["msg"].startswith(f"{path} is not an image archive docker load accepts: ")
    assert reason in result["msg"]


def test_a_file_that_is_not_a_tar_fails(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("an image, promise\n")
    result = run(capsys, path=str(path))
    assert "is not an image archive docker load accepts: not a tar archive" in result["msg"]


def test_name_requires_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, path=str(tmp_path / "x.tar"), name="a/b")
    assert result["msg"] == "parameters are required together: name, tag"


@pytest.mark.parametrize(("name", "expected"), [
    ("docker.io/library/nginx", "nginx:1"),
    ("library/nginx", "nginx:1"),
    ("index.docker.io/openvino/model_server", "openvino/model_server:1"),
    ("registry.example:5000/library/x", "registry.example:5000/library/x:1"),
])
def test_references_are_written_as_docker_save_does(name: str, expected: str) -> None:
    assert normalize_reference(name, "1") == expected
