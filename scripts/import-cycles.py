#!/usr/bin/env python3
"""Finds import circles between the files of each crate's `src/`.

    python3 scripts/import-cycles.py            # every crate under crates/
    python3 scripts/import-cycles.py crates/portcullis crates/portcullis-waf
    python3 scripts/import-cycles.py --tests    # test modules' imports too

A file depends on another when it names an item of the other by a path:
`use crate::a::B;`, `use super::B;`, `use self::a::B;`, or a path written in
the code (`crate::a::B::new()`). A path is resolved to the file that defines
the item: through the module files (`a.rs`, `a/mod.rs`, inline `mod a { }`
blocks stay in their file) and through re-exports (`pub use child::B;` in
`a/mod.rs` sends `crate::a::B` on to `a/child.rs`). A re-export itself
(`pub use`, `pub(crate) use`, ...) is not a dependency of the file that
declares it: it routes a name, it uses nothing. `mod a;` declarations are
not dependencies either. Inline `#[cfg(test)] mod ... { }` blocks are left
out unless `--tests` is given: a test that checks one file against another
(a fast path against the general one) is not a dependency of the code.

Prints each circle (a strongly connected component of more than one file)
with the edges inside it and the line of each, and exits 1 if there is any.
Plain Python 3, no dependencies; a heuristic reader, not a Rust parser
(macros are not expanded, `#[path]` is not followed, glob imports
(`use super::*`) count as a dependency on the module's file).
"""

import os
import re
import sys
from collections import defaultdict

ITEM = re.compile(
    r"\b(?:struct|enum|union|trait|type|fn|const|static|mod)\s+([A-Za-z_][A-Za-z0-9_]*)"
    r"|\bmacro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)"
)
USE = re.compile(r"\b(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]*);")
PATH = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
INLINE_MOD = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{")


def strip(text):
    """The source with comments, strings and char literals blanked (newlines
    kept, so that offsets still give line numbers)."""
    out = []
    i, n = 0, len(text)
    blank = lambda s: re.sub(r"[^\n]", " ", s)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif re.match(r"b?r#*\"", text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r"b?r(#*)\"", text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^'\\\n])'", text[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e as f}, self}` -> [[a, b], [a, c, d], [a, c, e], [a]]."""
    tree = re.sub(r"\s+", "", tree)
    paths = []

    def walk(prefix, s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        if cur:
            parts.append(cur)
        for part in parts:
            if "{" in part:
                head, _, rest = part.partition("{")
                head = [p for p in head.split("::") if p]
                walk(prefix + head, rest[:-1])
            else:
                part = re.sub(r"as[A-Za-z_0-9]+$", "", part) if "as" in part and "::" in part else part
                segs = [p for p in part.split("::") if p]
                if segs and segs[-1] == "self":
                    segs = segs[:-1]
                paths.append(prefix + segs)

    walk([], tree)
    return paths


def split_as(tree):
    """Renames of a use tree: name it binds -> last segment of its path."""
    return {m.group(2): m.group(1) for m in re.finditer(r"([A-Za-z_0-9]+)\s+as\s+([A-Za-z_0-9]+)", tree)}


class Crate:
    def __init__(self, src, tests=False):
        self.src = src
        self.tests = tests
        self.files = {}  # module path (tuple) -> file
        self.modpath = {}  # file -> module path
        for root, _, names in os.walk(src):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                full = os.path.join(root, name)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                if rel.startswith("bin/") or (rel == "main.rs" and os.path.exists(os.path.join(src, "lib.rs"))):
                    continue
                parts = rel[:-3].split("/")
                if parts[-1] == "mod":
                    parts = parts[:-1]
                if parts in (["lib"], ["main"]):
                    parts = []
                self.files[tuple(parts)] = full
                self.modpath[full] = tuple(parts)
        self.text = {f: strip(open(f, encoding="utf-8", errors="replace").read()) for f in self.modpath}
        self.defined = {f: {a or b for a, b in ITEM.findall(t)} for f, t in self.text.items()}
        # Re-exports: file -> name -> absolute path (list) it stands for.
        self.reexports = defaultdict(dict)
        for f, t in self.text.items():
            for m in USE.finditer(t):
                renames = split_as(m.group(2))
                for path in expand(m.group(2)):
                    if not path or path[-1] == "*":
                        continue
                    absolute = self.absolute(self.modpath[f], path)
                    if absolute is None:
                        continue
                    name = path[-1]
                    for alias, orig in renames.items():
                        if orig == name:
                            name = alias
                    self.reexports[f][name] = absolute

    def absolute(self, here, path):
        """The crate-absolute module path of `path` written in module
        `here`, or None for a path into another crate."""
        here = list(here)
        if path[0] == "crate":
            return path[1:]
        if path[0] in ("super", "self"):
            while path and path[0] in ("super", "self"):
                if path[0] == "super":
                    here = here[:-1]
                path = path[1:]
            return here + path
        # A path relative to this module: a child module (`use child::X`).
        if tuple(here + [path[0]]) in self.files:
            return here + path
        return None

    def resolve(self, path, seen=()):
        """The file that defines the item at crate-absolute `path`."""
        for k in range(len(path), -1, -1):
            f = self.files.get(tuple(path[:k]))
            if f is None:
                continue
            rest = path[k:]
            if not rest or rest[0] == "*":
                return f
            name = rest[0]
            if name in self.defined[f]:
                return f
            target = self.reexports[f].get(name)
            if target is not None and (f, name) not in seen:
                return self.resolve(target + rest[1:], seen + ((f, name),))
            return f
        return None

    def edges(self):
        """(from, to) -> line numbers."""
        out = defaultdict(set)
        for f, t in self.text.items():
            base = list(self.modpath[f])
            # Inline `mod x { ... }` blocks shift `super::`/`self::`.
            stack, opens = [], []
            depth = 0
            marks = {m.end() - 1: m.group(1) for m in INLINE_MOD.finditer(t)}
            scope_at = []  # (offset, module path) changes
            for i, ch in enumerate(t):
                if ch == "{":
                    depth += 1
                    if i in marks:
                        stack.append(marks[i])
                        opens.append(depth)
                        scope_at.append((i, base + stack))
                elif ch == "}":
                    if opens and opens[-1] == depth:
                        opens.pop()
                        stack.pop()
                        scope_at.append((i, base + stack))
                    depth -= 1

            # Spans of `#[cfg(test)]` inline modules, left out unless --tests.
            test_spans = []
            if not self.tests:
                for m in TEST_MOD.finditer(t):
                    d, k = 0, m.end() - 1
                    while k < len(t):
                        d += t[k] == "{"
                        d -= t[k] == "}"
                        if d == 0:
                            break
                        k += 1
                    test_spans.append((m.start(), k))
            in_test = lambda offset: any(a <= offset <= b for a, b in test_spans)

            def scope(offset):
                cur = base
                for at, mod in scope_at:
                    if at > offset:
                        break
                    cur = mod
                return cur

            use_spans = []
            for m in USE.finditer(t):
                use_spans.append((m.start(), m.end()))
                if m.group(1) or in_test(m.start()):
                    continue
                here = scope(m.start())
                line = t.count("\n", 0, m.start()) + 1
                for path in expand(m.group(2)):
                    if not path:
                        continue
                    self.add(out, f, here, path, line)
            for m in PATH.finditer(t):
                if any(a <= m.start() < b for a, b in use_spans) or in_test(m.start()):
                    continue  # inside a `use` statement (counted above) or a test module
                path = [p for p in re.sub(r"\s+", "", m.group(1)).split("::") if p]
                line = t.count("\n", 0, m.start()) + 1
                self.add(out, f, scope(m.start()), path, line)
        return out

    def add(self, out, f, here, path, line):
        absolute = self.absolute(here, path)
        if absolute is None:
            return
        target = self.resolve(absolute)
        if target is not None and target != f:
            out[(f, target)].add(line)


def circles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index, low, on, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def main(argv):
    tests = "--tests" in argv
    argv = [a for a in argv if a != "--tests"]
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    crates = argv or sorted(
        os.path.join(root, "crates", d)
        for d in os.listdir(os.path.join(root, "crates"))
        if os.path.isdir(os.path.join(root, "crates", d, "src"))
    )
    found = 0
    for crate in crates:
        src = os.path.join(crate, "src")
        if not os.path.isdir(src):
            continue
        c = Crate(src, tests)
        edges = c.edges()
        for comp in circles(edges):
            found += 1
            rel = lambda f: os.path.relpath(f, root)
            print(f"circle in {os.path.relpath(crate, root)}: " + ", ".join(rel(f) for f in comp))
            for (a, b), lines in sorted(edges.items()):
                if a in comp and b in comp:
                    print(f"    {rel(a)} -> {rel(b)}  (line {', '.join(map(str, sorted(lines)))})")
    if not found:
        print(f"no import circle in {len(crates)} crate(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
