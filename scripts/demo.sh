#!/usr/bin/env bash
# The first command of README.md: set up everything, import the sample world into a demo
# store, and talk to Odile Marrow, the harbour warden of "Lanterns of Brindlemoor".
# Extra arguments go to `lore chat` (e.g. --character pip --at 4).
set -euo pipefail
cd "$(dirname "$0")/.."

lore="$(scripts/setup.sh | tail -n 1)"
store="${LORE_HOME:-$HOME/.local/share/lorekeeper}/demo-store"
# The demo store is rebuilt each time so that it always matches world/.
rm -rf "$store"
"$lore" import --store "$store" world/policy.trig world/brindlemoor.trig
"$lore" check --store "$store"
exec "$lore" chat --store "$store" --production lanterns --character odile --at 2 "$@"
