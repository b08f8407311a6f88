#!/usr/bin/env bash
# ansible-test only runs inside .../ansible_collections/<namespace>/<name> and resolves
# symlinks, so sanity runs on a copy of the collection's files.
set -euo pipefail
: "${CACHE_DIR:?run through make test}"
dest="$CACHE_DIR/sanity/ansible_collections/edge_retail/ovms"
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest"
cd "$dest"
git init -q . && git add -A
ansible-test sanity --python 3.11 --requirements
