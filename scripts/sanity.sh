#!/usr/bin/env bash
# ansible-test only runs inside .../ansible_collections/<namespace>/<name> and resolves
# symlinks, so sanity runs on a copy of the collection's files.
set -euo pipefail
: "${CACHE_DIR:?run through make test}"
dest="$CACHE_DIR/sanity/ansible_collections/edge_retail/ovms"
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest"
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host this
# machine cannot reach; seed its cache with one that uses Python's bundled pip instead.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp scripts/ansible-test-get-pip.py "$cache/get_pip_24_2.py"
cd "$dest"
git init -q . && git add -A
ansible-test sanity --python 3.11 --requirements
