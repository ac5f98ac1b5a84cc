#!/usr/bin/env python3
"""Compare the installed `neuromancer` package with the upstream 1.5 API surface.

A copy of the project's shared checker (``../shared/tools/api_check.py``) with the reference
surfaces beside it in ``tests/data/``, so that `tests/test_api_surface.py` runs wherever the
repository is checked out (GitHub included), not only where ``../shared`` exists. Keep the JSON
files equal to ``../shared/api/`` (``tests/test_api_surface.py`` checks that where it can).

    python tests/data/api_check.py            # every name in scope
    python tests/data/api_check.py --scope core

For each name in the reference (tests/data/neuromancer-1.5-surface.json) it checks
that the module exposes it, that it is the same kind (class or function), and that every
parameter of the reference signature exists with the same name, in the same position,
with the same default (None where upstream has a mutable default such as [] counts as the
same). Extra parameters after the reference ones are fine.
The last line is a summary: 'api: N/M names match'. Exit 1 if anything is missing.
"""
import argparse
import importlib
import inspect
import json
import os
import re
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "neuromancer-1.5-surface.json")


def params(sig_text):
    """'(self, a, b=1, *args, c=2)' -> [('a', None), ('b', '1'), ...] (self dropped, *-markers kept)."""
    body = sig_text.strip()
    body = body[body.index("(") + 1: body.rindex(")")] if ")" in body else body
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip()); cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    out = []
    for p in parts:
        if p in ("self", "/"):
            continue
        name, _, default = p.partition("=")
        name = name.split(":")[0].strip()
        out.append((name, default.strip() or None))
    return out


def norm_default(d):
    if d is None:
        return None
    d = re.sub(r"<built-in method (\w+) of type object at 0x[0-9a-f]+>", r"torch.\1", d)
    d = re.sub(r"<function (\w+) at 0x[0-9a-f]+>", r"\1", d)
    d = re.sub(r"<([\w.]+) object at 0x[0-9a-f]+>", lambda m: m.group(1).split(".")[-1] + "()", d)
    d = re.sub(r"<module '([\w.]+)' from '[^']*'>", r"\1", d)
    d = re.sub(r"Generator\(PCG64\) at 0x[0-9A-Fa-f]+", "np.random.default_rng()", d)
    return d.replace('"', "'")


def compare(ref_sig, obj):
    try:
        ours = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ["signature unreadable"]
    ref_p, our_p = params(ref_sig), params(ours)
    problems = []
    for i, (name, default) in enumerate(ref_p):
        if name.startswith("*"):
            continue
        if i >= len(our_p) or our_p[i][0] != name:
            names = [n for n, _ in our_p]
            if name in names:
                problems.append(f"parameter '{name}' at position {names.index(name)}, upstream has it at {i}")
            elif not any(n.startswith("**") for n in names):
                problems.append(f"missing parameter '{name}'")
            continue
        ref_d, our_d = norm_default(default), norm_default(our_p[i][1])
        mutable = ref_d is not None and (ref_d in ("[]", "{}") or ref_d.endswith("()"))
        if ref_d != our_d and not (mutable and our_d == "None"):  # None for a mutable default is fine
            problems.append(f"'{name}' default {our_p[i][1]!r}, upstream {default!r}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scope", choices=["core", "examples", "compat", "tutorials", "all"], default="all")
    ap.add_argument("--surface", default=REF, help="the reference file (default: the 1.5 surface beside this script)")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    with open(a.surface) as f:
        ref = json.load(f)
    total = ok = 0
    report = []
    for modname, names in sorted(ref["modules"].items()):
        try:
            mod = importlib.import_module(modname)
        except Exception as e:  # noqa: BLE001 - report any import failure
            for e2 in names.values():
                if a.scope in ("all", e2["scope"]):
                    total += 1
            report.append(f"MODULE {modname}: import failed: {type(e).__name__}: {e}")
            continue
        for n, entry in sorted(names.items()):
            if a.scope not in ("all", entry["scope"]):
                continue
            total += 1
            obj = getattr(mod, n, None)
            if obj is None:
                report.append(f"{modname}.{n}: missing")
                continue
            probs = []
            if entry["kind"] == "class":
                if not inspect.isclass(obj):
                    probs.append("upstream is a class")
                else:
                    for m, s in entry["members"].items():
                        if s is None or s == "<property>":
                            if not hasattr(obj, m):
                                probs.append(f"missing member {m}")
                            continue
                        f = getattr(obj, m, None)
                        if f is None:
                            probs.append(f"missing method {m}{s}")
                        else:
                            probs += [f"{m}: {p}" for p in compare(s, f)]
            elif entry["kind"] == "function" and n != "variable":
                probs += compare(entry["signature"], obj)
            if probs:
                report.append(f"{modname}.{n}: " + "; ".join(probs))
            else:
                ok += 1
    for key, reg in sorted(ref["registries"].items()):
        if a.scope not in ("all", reg["scope"]):
            continue
        modname, attr = key.rsplit(".", 1)
        total += 1
        try:
            have = set(getattr(importlib.import_module(modname), attr))
            if reg.get("of") == "classes":
                have = {getattr(c, "__name__", c) for c in have}
        except Exception as e:  # noqa: BLE001
            report.append(f"REGISTRY {key}: {type(e).__name__}: {e}")
            continue
        missing = [k for k in reg["keys"] if k not in have]
        if missing:
            report.append(f"REGISTRY {key}: missing keys {missing}")
        else:
            ok += 1
    if not a.quiet:
        print("\n".join(report))
    print(f"api: {ok}/{total} names match (scope {a.scope})")
    return 0 if ok == total else 1


if __name__ == "__main__":
    sys.exit(main())
