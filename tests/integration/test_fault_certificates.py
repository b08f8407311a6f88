"""Expiring certificates are renewed, and no private key shows in any output (issue 11, faults
5 and 6).

A two-host store on this machine (local connection): `srv` serves and runs the mTLS proxy (a
real container on a port of its own), `cli` is its remote client. The first run issues the store
CA and both certificates valid for 10 days; the next run, with ovms_tls_renew_days 30, must
reissue all three, say so, and restart the proxy on them; a third changes nothing. Then the
client reaches the server under a new name: only the server certificate is reissued. Every run
is at -vvv, and the whole log must hold no `PRIVATE KEY` and no base64 line of any key.
"""
from __future__ import annotations

import base64
import datetime
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from faults import CACHE, recap_changed, run_playbook
from test_server_upgrade_rollback import free_port

# Playbooks here read the image archives and the model repository: wait for the session builds.
pytestmark = pytest.mark.usefixtures("built_images")

PLAY = """
- name: Issue the store's certificates.
  hosts: all
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_tls

- name: Run the mTLS proxy on the server host.
  hosts: srv
  gather_facts: false
  roles:
    - edge_retail.ovms.ovms_proxy
"""


def inventory_vars(tmp_path: Path, proxy: str, address: str, **overrides: Any) -> dict[str, Any]:
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ovms_tls_controller_dir": str(tmp_path / "tls"),
        "ovms_tls_store": "store-0042",
        "ovms_proxy_container_name": proxy,
        "ovms_proxy_config_dir": str(tmp_path / "proxy"),
        "ovms_proxy_bind_address": "127.0.0.1",
        "ovms_proxy_grpc_port": free_port(),
        "ovms_proxy_upstream_grpc": f"127.0.0.1:{free_port()}",
        "ovms_proxy_image_archive": str(CACHE / "images/proxy.tar"),
        "ovms_proxy_image_archive_dir": str(tmp_path / "images"),
        "ovms_server_grpc_port": 9000,
        **overrides,
        "__route": {"server": "srv", "address": address},
    }


def run(tmp_path: Path, extra: dict[str, Any]) -> Any:
    inventory = tmp_path / "inventory.yml"
    route = extra.pop("__route")
    inventory.write_text(json.dumps({"all": {"children": {
        "ovms_servers": {"hosts": {"srv": None}},
        "ovms_clients": {"hosts": {"cli": {"ovms_client_route": route}}}}}}))
    result = run_playbook(tmp_path, PLAY, extra, "-i", str(inventory), "-vvv")
    extra["__route"] = route
    with (tmp_path / "all-runs.log").open("a") as log:
        log.write(result.stdout + result.stderr)
    return result


def not_after(path: Path) -> datetime.datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def key_secrets(paths: list[Path]) -> list[str]:
    """What a leak of each PEM key would show: its whole base64 body, every body line that is
    not part of the public key (an EC key's PEM ends with its public point, which certificate
    info rightly prints), and the private scalar in base64 and hex."""
    from cryptography.hazmat.primitives import serialization

    secrets: list[str] = []
    for path in paths:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        public = "".join(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        ).decode().splitlines()[1:-1])
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("-----")]
        secrets.append("".join(lines))
        secrets.extend(ln for ln in lines if ln not in public)
        scalar = key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
        secrets.extend([base64.b64encode(scalar).decode(), scalar.hex()])
    return secrets


def test_expiring_certificates_are_renewed_and_no_key_is_ever_shown(
        tmp_path: Path, docker_client) -> None:
    pytest.importorskip("cryptography")
    proxy = f"ovms-fault-proxy-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "tls" / "store-0042"
    short = inventory_vars(tmp_path, proxy, "srv.store-0042.invalid", ovms_tls_cert_valid_days=10,
                           ovms_tls_ca_valid_days=10, ovms_tls_renew_days=5,
                           ovms_tls_expiry_warning_days=5)
    try:
        first = run(tmp_path, short)
        assert first.returncode == 0, first.stdout[-5000:]
        files = [store / "ca.crt", store / "hosts/srv.crt", store / "hosts/cli.crt"]
        before = {f: not_after(f) for f in files}
        soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=11)
        assert all(t < soon for t in before.values()), before
        started = docker_client.containers.get(proxy).attrs["State"]["StartedAt"]

        # Same settings but the default threshold: all three are within 30 days of expiry.
        normal = {**short, "ovms_tls_cert_valid_days": 397, "ovms_tls_ca_valid_days": 3650,
                  "ovms_tls_renew_days": 30, "ovms_tls_expiry_warning_days": 30}
        second = run(tmp_path, normal)
        assert second.returncode == 0, second.stdout[-5000:]
        out = " ".join(second.stdout.split())
        renewed = re.findall(r'"msg": "Renewed ([^"]*)"', out)
        print("\n" + "\n".join(renewed))
        assert any(f"{store}/ca.crt (store CA): it expires on" in r for r in renewed), renewed
        assert any(f"{store}/hosts/srv.crt (srv): it expires on" in r for r in renewed), renewed
        assert any(f"{store}/hosts/cli.crt (cli): it expires on" in r for r in renewed), renewed
        for path in files:
            assert not_after(path) > soon, path
        container = docker_client.containers.get(proxy)
        assert container.attrs["State"]["StartedAt"] != started, "the proxy was not restarted"
        assert container.attrs["HostConfig"]["LogConfig"] == {
            "Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}

        third = run(tmp_path, normal)
        assert third.returncode == 0, third.stdout[-5000:]
        assert recap_changed(third.stdout) == 0 or "changed=0" in third.stdout, third.stdout[-3000:]
        for line in third.stdout.splitlines():
            if line.startswith(("srv ", "cli ")) and "changed=" in line:
                assert "changed=0" in line, line
        assert '"msg": "Renewed' not in third.stdout

        # The client now reaches the server under another name: the server certificate follows.
        moved = {**normal, "__route": {"server": "srv", "address": "10.0.42.2"}}
        fourth = run(tmp_path, moved)
        assert fourth.returncode == 0, fourth.stdout[-5000:]
        out = " ".join(fourth.stdout.split())
        renewed = re.findall(r'"msg": "Renewed ([^"]*)"', out)
        print("\n".join(renewed))
        assert len(renewed) == 1 and f"{store}/hosts/srv.crt (srv): its names" in renewed[0], renewed
        from cryptography import x509

        cert = x509.load_pem_x509_certificate((store / "hosts/srv.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.42.2"]

        # No secret in any output, keys 0600.
        keys = sorted(store.rglob("*.key")) + [tmp_path / "proxy" / "tls" / "server.key"]
        assert len(keys) == 4, keys
        for key in keys:
            assert key.stat().st_mode & 0o777 == 0o600, key
        proxy_key = tmp_path / "proxy" / "tls" / "server.key"
        assert (proxy_key.stat().st_uid, proxy_key.stat().st_gid) == (8443, 8443)
        log = (tmp_path / "all-runs.log").read_text()
        hits = log.count("PRIVATE KEY") + sum(log.count(secret) for secret in key_secrets(keys))
        print(f"-vvv log of 4 runs: {len(log)} bytes, {hits} hits for PRIVATE KEY or key bodies")
        assert hits == 0
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": proxy}):
            container.remove(force=True)
