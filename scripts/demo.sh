#!/usr/bin/env bash
# The first command of README.md: set up everything, import the sample world into a demo
# store, and talk to Odile Marrow, the harbour warden of "Lanterns of Brindlemoor".
# Extra arguments go to `lore chat` (e.g. --character pip --at 4).
set -euo pipefail
cd "$(dirname "$0")/.."

lore="$(scripts/setup.sh | tail -n 1)"
home="${LORE_HOME:-$HOME/.local/share/lorekeeper}"
store="$home/demo-store"
# The demo store is rebuilt each time so that it always matches world/.
rm -rf "$store"
"$lore" import --store "$store" world/policy.trig world/brindlemoor.trig
"$lore" check --store "$store"
# Defaults for what the arguments (passed to `lore chat`) leave out; clap refuses an option
# given twice, so a default is added only when its option is absent.
has() { for a in "${@:2}"; do case "$a" in "$1"|"$1"=*) return 0 ;; esac; done; return 1; }
defaults=()
has --production "$@" || has -p "$@" || defaults+=(--production lanterns)
has --character "$@" || has -c "$@" || defaults+=(--character odile)
has --at "$@" || defaults+=(--at 2)
# The conversation is exported with a signed C2PA sidecar; `lore verify FILE` checks both.
has --export "$@" || defaults+=(--export "$home/demo-conversation.txt")
exec "$lore" chat --store "$store" "${defaults[@]}" "$@"
