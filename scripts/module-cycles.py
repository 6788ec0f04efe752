#!/usr/bin/env python3
"""Fails when the modules of a crate use each other in a circle.

For each crate under crates/, every file of src/ is a module (lib.rs, main.rs and mod.rs stand
for their folder). A module uses another when it names it by path: `crate::a::b`, `super::b`,
or inside `use crate::{...}` / `use super::{...}` groups. Test modules (`#[cfg(test)] mod
tests` to the end of the file) use everything and are left out. A circle is a strongly
connected set of two or more modules; each is printed with the uses that close it.

usage: scripts/module-cycles.py [WORKSPACE]     exit 0: none; 1: some
"""
import os
import re
import sys

IDENT = r"[a-z_][a-z0-9_]*"


def module_name(src, path):
    parts = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return "::".join(parts)


def without_tests(text):
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests\b", text)
    return text[: cut.start()] if cut else text


def paths_named(text):
    """Every `crate::x::y` and `super::x` path the text names, groups expanded."""
    for root, rest in re.findall(rf"\b(crate|super)::((?:{IDENT}::)*{IDENT}|\{{[^}}]*\}})", text):
        if rest.startswith("{"):
            for item in re.findall(rf"\b({IDENT}(?:::{IDENT})*)", rest):
                yield root, item
        else:
            yield root, rest


def edges_of(src):
    modules = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    modules[module_name(src, path)] = without_tests(f.read())
    edges = {m: set() for m in modules}
    for module, text in modules.items():
        parent = module.rsplit("::", 1)[0] if "::" in module else ""
        for root, path in paths_named(text):
            parts = path.split("::")
            if root == "super":
                parts = (parent.split("::") if parent else []) + parts
            # The longest prefix that is a module is the one used.
            for k in range(len(parts), 0, -1):
                target = "::".join(parts[:k])
                if target in modules:
                    if target != module:
                        edges[module].add(target)
                    break
    return edges


def circles(edges):
    """Tarjan's strongly connected components of two or more nodes."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    crates = os.path.join(root, "crates")
    total = 0
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        if not os.path.isdir(src):
            continue
        edges = edges_of(src)
        for circle in circles(edges):
            total += 1
            print(f"crates/{crate}: {' <-> '.join(m or 'crate' for m in circle)}")
            for a in circle:
                for b in sorted(edges[a] & set(circle)):
                    print(f"    {a or 'crate'} uses {b or 'crate'}")
    print(f"{total} circle(s) of modules")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
