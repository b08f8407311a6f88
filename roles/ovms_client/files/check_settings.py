"""Run the client's own settings check on the controller from one JSON document on stdin.

Reads {"profile": <profile.yaml text>, "env": <client.env text>}, writes both to a private
temporary directory, runs `python -m ovms_client --check --no-file-checks` on them and removes
the directory. Its standard output and error pass through with the temporary paths replaced by
the names of the role variables they came from; the exit code is the client's. One process
for what would otherwise take a directory, two files, a check and a clean-up as separate tasks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    settings = json.load(sys.stdin)
    with tempfile.TemporaryDirectory(suffix=".ovms-client-check") as tmp:
        profile = Path(tmp, "profile.yaml")
        env_file = Path(tmp, "client.env")
        for path, text in ((profile, settings["profile"]), (env_file, settings["env"])):
            path.touch(mode=0o600)
            path.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "ovms_client", "--check", "--no-file-checks",
             "--profile", str(profile), "--env-file", str(env_file)],
            capture_output=True, text=True, check=False)
    for stream, text in ((sys.stdout, proc.stdout), (sys.stderr, proc.stderr)):
        stream.write(text.replace(f"env file {env_file}", "ovms_client_env")
                     .replace(str(profile), "ovms_client_profile"))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
