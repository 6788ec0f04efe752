#!/usr/bin/env bash
# Fuzzes the parsers of files from outside the studio (PNG chunks, cards, CHARX) with
# cargo-fuzz (libFuzzer) for SECONDS each (default 60), then prints executions and crashes.
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if missing. Not part of CI.
# The seeds are the round-trip corpus (crates/cards/tests/corpus: JSON, PNG and CHARX cards).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(png_chunks card charx)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked >&2
export CARGO_TARGET_DIR="${LORE_FUZZ_TARGET_DIR:-$HOME/.cache/lorekeeper/fuzz-target}"
corpora="${LORE_FUZZ_CORPUS:-$HOME/.cache/lorekeeper/fuzz-corpus}"

for target in "${targets[@]}"; do
  mkdir -p "$corpora/$target" "fuzz/artifacts/$target"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpora/$target" crates/cards/tests/corpus -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  crashes="$(find "fuzz/artifacts/$target" -type f | wc -l)"
  echo "$target: ${runs:-?} executions in ${seconds}s, $crashes crash files (exit $status)"
  [ "$status" -eq 0 ] || tail -40 "$log" >&2
  rm -f "$log"
done
