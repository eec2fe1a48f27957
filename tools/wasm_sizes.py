"""What makes the page's wasm big: code bytes per crate (from the wasm's name section) and data.

    python3 tools/wasm_sizes.py dist/dynrefer-web_bg.wasm [--top 25]

A stand-in for `twiggy top` grouped by crate, with no tool to install: it reads the code
section's function bodies, names them from the `name` custom section (Rust's mangled symbols,
legacy `_ZN` or v0 `_R`), and adds up the bytes per crate; the data section counts apart.
"""
import argparse
import collections
import re
import sys


def leb(buf, i):
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, i


def crate_of(name):
    if name.startswith("_ZN"):
        m = re.match(r"_ZN(\d+)", name)
        if m:
            n = int(m.group(1))
            start = m.end()
            ident = name[start:start + n]
            if ident.startswith("_$LT$") or ident.startswith("$LT$"):
                inner = re.search(r"\$LT\$([A-Za-z0-9_]+)\.\.", ident)
                return inner.group(1) if inner else "<impl>"
            return ident
    if name.startswith("_R"):
        m = re.search(r"C[s0-9_]*?(\d+)([A-Za-z_][A-Za-z0-9_]*)", name)
        if m:
            return m.group(2)[: int(m.group(1))]
    name = re.sub(r"\[[0-9a-f]+\]", "", name)  # v0 crate disambiguators
    if name.startswith("<"):
        # `<Type as Trait>::method`: the type's crate, or the trait's for a generic type
        m = re.match(r"<+(?:&(?:mut )?)*([^ ]+) as ([^>]+)", name)
        if m:
            for side in m.groups():
                c = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", side.lstrip("<&"))
                if c:
                    return c.group(1)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    return "<unnamed>" if not name else "<other>"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wasm")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    buf = open(a.wasm, "rb").read()
    assert buf[:4] == b"\0asm", "not a wasm module"
    i = 8
    imported_funcs = 0
    bodies = []
    names = {}
    sections = collections.Counter()
    while i < len(buf):
        sid = buf[i]
        size, j = leb(buf, i + 1)
        end = j + size
        if sid == 0:
            nlen, k = leb(buf, j)
            sname = buf[k:k + nlen].decode(errors="replace")
            sections[f"custom:{sname}"] += size
            if sname == "name":
                k += nlen
                while k < end:
                    sub = buf[k]
                    ssize, k2 = leb(buf, k + 1)
                    if sub == 1:
                        count, p = leb(buf, k2)
                        for _ in range(count):
                            idx, p = leb(buf, p)
                            ln, p = leb(buf, p)
                            names[idx] = buf[p:p + ln].decode(errors="replace")
                            p += ln
                    k = k2 + ssize
        else:
            sections[{1: "type", 2: "import", 3: "function", 7: "export", 10: "code", 11: "data"}.get(sid, str(sid))] += size
            if sid == 2:
                count, p = leb(buf, j)
                for _ in range(count):
                    for _ in range(2):
                        ln, p = leb(buf, p)
                        p += ln
                    kind = buf[p]
                    p += 1
                    if kind == 0:
                        _, p = leb(buf, p)
                        imported_funcs += 1
                    elif kind == 1:
                        p += 1
                        flags, p = leb(buf, p)
                        _, p = leb(buf, p)
                        if flags & 1:
                            _, p = leb(buf, p)
                    elif kind == 2:
                        flags, p = leb(buf, p)
                        _, p = leb(buf, p)
                        if flags & 1:
                            _, p = leb(buf, p)
                    elif kind == 3:
                        p += 2
                    else:
                        _, p = leb(buf, p)
            if sid == 10:
                count, p = leb(buf, j)
                for _ in range(count):
                    bsize, q = leb(buf, p)
                    bodies.append(q + bsize - p)
                    p = q + bsize
        i = end
    total = len(buf)
    per_crate = collections.Counter()
    for n, size in enumerate(bodies):
        per_crate[crate_of(names.get(n + imported_funcs, ""))] += size
    print(f"{a.wasm}: {total / 1e6:.2f} MB, {len(bodies)} functions, names for {len(names)}")
    print("| section | MB | share |\n|---|---:|---:|")
    for s, size in sections.most_common():
        print(f"| {s} | {size / 1e6:.2f} | {100 * size / total:.1f} % |")
    print(f"\n| crate (code) | MB | share of code |\n|---|---:|---:|")
    code = sum(bodies)
    for c, size in per_crate.most_common(a.top):
        print(f"| {c} | {size / 1e6:.2f} | {100 * size / code:.1f} % |")


if __name__ == "__main__":
    sys.exit(main())
