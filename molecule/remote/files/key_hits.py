"""Count how often private key material appears in an Ansible log, without printing any of it.

For every PEM private key under the given directory, searches the log for the "PRIVATE KEY"
marker and for each base64 line of the key's body that holds secret bytes (an EC key's last line
is its public point, which certificates and CSRs show by right, so such lines are not counted),
and for the secret value itself written in hex. Prints one JSON object: the log's size, its
-vvv lines, and per key how many of its secret lines and hex forms were found.
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def secret_values(pem: bytes) -> list[bytes]:
    """The private numbers of a key, as the big-endian bytes its DER holds."""
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        return [key.private_numbers().private_value.to_bytes(size, "big")]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        return [_int_bytes(n) for n in (numbers.d, numbers.p, numbers.q,
                                        numbers.dmp1, numbers.dmq1, numbers.iqmp)]
    return []


def secret_lines(pem: bytes) -> list[str]:
    """The body lines of a PEM key that hold secret bytes; every body line for a key type this
    does not know."""
    lines = [line.strip() for line in pem.decode("ascii").splitlines()
             if line.strip() and not line.startswith("-----")]
    der = base64.b64decode("".join(lines))
    ranges = []
    for value in secret_values(pem):
        start = der.find(value)
        if start >= 0:
            ranges.append((start, start + len(value)))
    if not ranges:
        return lines
    found, offset = [], 0
    for line in lines:
        size = len(base64.b64decode(line))
        if any(start < offset + size and offset < end for start, end in ranges):
            found.append(line)
        offset += size
    return found


def main(log_path: str, keys_dir: str) -> int:
    log = Path(log_path).read_text(encoding="utf-8", errors="replace")
    lowered = log.lower()
    keys = sorted(p for p in Path(keys_dir).rglob("*.key") if p.is_file())
    line_hits, hex_hits, searched = {}, {}, {}
    for key in keys:
        pem = key.read_bytes()
        name = str(key.relative_to(keys_dir))
        lines = secret_lines(pem)
        searched[name] = len(lines)
        line_hits[name] = sum(1 for line in lines if line in log)
        hexes = [value.hex() for value in secret_values(pem)]
        hex_hits[name] = sum(1 for h in hexes if h in lowered or ":".join(h[i:i + 2] for i in range(0, len(h), 2)) in lowered)
    print(json.dumps({
        "log_bytes": len(log.encode()),
        # Lines that only -vvv writes: the connection plugin's commands.
        "vvv_lines": sum(1 for line in log.splitlines() if "ESTABLISH" in line or "EXEC " in line),
        "marker_hits": log.count("PRIVATE KEY"),
        "key_files": len(keys),
        "secret_lines_searched": searched,
        "key_line_hits": line_hits,
        "key_hex_hits": hex_hits,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
