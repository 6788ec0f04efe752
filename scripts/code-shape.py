#!/usr/bin/env python3
"""Reports the shape of the code: functions (outside test modules) over 100 lines in crates/*/src,
and source files (tests included) over 1,000 lines. A function's length runs from its `fn`
line to its closing brace.

usage: scripts/code-shape.py [WORKSPACE]
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "."
limit = 100
long_fns = []
big_files = []
for dirpath, _, names in os.walk(os.path.join(root, "crates")):
    if "/target" in dirpath: continue
    for n in names:
        if not n.endswith(".rs"): continue
        p = os.path.join(dirpath, n)
        text = open(p, encoding="utf-8").read()
        lines = text.split("\n")
        if len(lines) - 1 > 1000: big_files.append((len(lines) - 1, p))
        if "/src/" not in p: continue
        cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
        body = text[: cut.start()] if cut else text
        blines = body.split("\n")
        i = 0
        while i < len(blines):
            m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", blines[i])
            if m:
                # find the opening brace and match
                depth = 0; started = False; j = i
                while j < len(blines):
                    l = re.sub(r'"(\\.|[^"\\])*"', '""', blines[j])
                    l = re.sub(r"'(\\.|[^'\\])'", "' '", l)
                    l = re.sub(r"//.*", "", l)
                    for ch in l:
                        if ch == "{": depth += 1; started = True
                        elif ch == "}": depth -= 1
                    if started and depth <= 0: break
                    if not started and l.rstrip().endswith(";"): break
                    j += 1
                if started:
                    length = j - i + 1
                    if length > limit: long_fns.append((length, p, i + 1, m.group(6)))
                i = j + 1 if started else i + 1
            else:
                i += 1
for l, p, line, name in sorted(long_fns, reverse=True): print(f"fn {l:5d} {p}:{line} {name}")
for l, p in sorted(big_files, reverse=True): print(f"file {l:5d} {p}")
print(f"{len(long_fns)} functions over {limit} lines; {len(big_files)} files over 1000 lines")
