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
"$lore" import --store "$dir/sample" world/brindlemoor.trig >/dev/null
"$lore" bench --store "$dir/sample" context --production lanterns --character odile --at 2

echo "== synthetic world of $quads quads"
"$lore" bench synth --quads "$quads" "$dir/synthetic.nq"
rm -rf "$dir/synthetic"
"$lore" bench import --into "$dir/synthetic" "$dir/synthetic.nq"
"$lore" bench --store "$dir/synthetic" context --synthetic \
  --production https://lorekeeper.dev/worlds/synthetic#production \
  --character https://lorekeeper.dev/worlds/synthetic#c0_0 --at 3

echo "== generation"
"$lore" bench generation --threads "${BENCH_THREADS:-2}"
