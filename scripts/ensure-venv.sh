#!/usr/bin/env bash
# Create the project venv from the pinned requirements; reuse it while they are unchanged.
set -euo pipefail

venv="${VENV:-.cache/venv}"
req=requirements/python.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "ensure-venv: installing $req into $venv"
python3 -m venv "$venv"
log="$venv.pip.log"
# pip's own noise goes to a log; it is printed only when the install fails.
if ! { "$venv/bin/pip" install --upgrade pip && "$venv/bin/pip" install -r "$req"; } >"$log" 2>&1; then
  grep -v "is ignored: it is neither" "$log" | tail -n 40 >&2
  exit 1
fi
echo "$want" >"$stamp"
