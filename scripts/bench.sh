#!/usr/bin/env bash
# Runs the foundation's measurements, each beside its baseline, and prints the figures.
# Uses a scratch directory (BENCH_DIR, default a new temp dir) for stores and the 1M world.
set -euo pipefail
cd "$(dirname "$0")/.."

lore="$(scripts/setup.sh | tail -n 1)"
dir="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$dir"
quads="${BENCH_QUADS:-1000000}"

echo "== sample world"
rm -rf "$dir/sample"
"$lore" import --store "$dir/sample" world/policy.trig world/brindlemoor.trig >/dev/null
"$lore" bench --store "$dir/sample" context --production lanterns --character odile --at 2

echo "== synthetic world of $quads quads"
"$lore" bench synth --quads "$quads" "$dir/synthetic.nq"
rm -rf "$dir/synthetic"
"$lore" bench import --into "$dir/synthetic" "$dir/synthetic.nq"
"$lore" bench --store "$dir/synthetic" context --synthetic \
  --production https://lorekeeper.dev/worlds/synthetic#production \
  --character https://lorekeeper.dev/worlds/synthetic#c0_0 --at 3

echo "== quests: sample world, then a synthetic world of 10,000 entities"
"$lore" bench --store "$dir/sample" quest --production lanterns
"$lore" bench synth --quads 446500 "$dir/synthetic10k.nq" >/dev/null
rm -rf "$dir/synthetic10k"
"$lore" import --store "$dir/synthetic10k" "$dir/synthetic10k.nq" >/dev/null
"$lore" bench --store "$dir/synthetic10k" quest \
  --production https://lorekeeper.dev/worlds/synthetic#production --histories 2

echo "== quest write-ups on the model (decoding under their schema vs unconstrained)"
"$lore" bench --store "$dir/sample" write-up --production lanterns --at 2 --quests 20 \
  --threads "${BENCH_THREADS:-2}"

echo "== generation"
"$lore" bench generation --threads "${BENCH_THREADS:-2}" --prompt-out "$dir/prompt.txt"

echo "== C2PA sidecar"
"$lore" bench sidecar

# Outside baseline, when a Python with llama-cpp-python (built from PyPI) is given:
#   python3 -m venv /tmp/llpy && /tmp/llpy/bin/pip install llama-cpp-python numpy
#   LLAMA_CPP_PYTHON=/tmp/llpy/bin/python scripts/bench.sh
if [ -n "${LLAMA_CPP_PYTHON:-}" ]; then
  "$LLAMA_CPP_PYTHON" scripts/bench_llama_cpp_python.py "$(scripts/fetch-model.sh)" "$dir/prompt.txt" \
    "${BENCH_THREADS:-2}" 64 7 2>/dev/null
  echo "  (compare with the engine line above; run twice and alternate for a fair figure)"
fi

echo "== server (stub model on loopback, wrk; BENCH_SERVE_SECONDS per run, default 20)"
if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
"$lore" bench serve --store "$dir/sample" --production lanterns --character odile --at 2 --duration "${BENCH_SERVE_SECONDS:-20}"
