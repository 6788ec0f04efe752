#!/usr/bin/env bash
# The second command of README.md: set up, then run the whole test suite (unit and
# integration tests on the real Oxigraph store, the real embedded model, the real server
# driven by the official openai Python client, and a real PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lorekeeper/target}"
export LORE_MODEL="${LORE_MODEL:-$(scripts/fetch-model.sh)}"
export LORE_ENCODER="${LORE_ENCODER:-${LORE_CACHE:-$HOME/.cache/lorekeeper}/models/all-minilm-l6-v2}"
eval "$(scripts/test-services.sh start)"
log="$(mktemp)"
trap 'rm -f "$log"; scripts/test-services.sh stop' EXIT
# Release profile: tests then share the one build of llama.cpp and RocksDB with `lore`,
# and the model runs at full speed.
status=0
cargo test --release --locked --workspace "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
