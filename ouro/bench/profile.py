"""Where a jitted step's time goes: per-op time shares from a jax.profiler trace, and counts
of the layout/precision ops in the optimised HLO. Shares of one trace are robust to a
loaded machine in a way absolute times are not.

    python -m ouro.bench.profile train cmp-tiny            # top ops, categories, HLO counts
    python -m ouro.bench.profile forward xut-small --dtype bfloat16 --steps 3 --top 30

Each executed XLA op (a "thunk": a fusion, a dot, a custom call, a copy...) is one trace
event named after its HLO instruction; the instruction's opcode and the ops fused into it
(from `compiled.as_text()`) give its category.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile
from typing import Any

import jax

# HLO opcodes counted in the optimised module (inside fusions too): what is not arithmetic
COUNTED = ("transpose", "copy", "convert", "dot", "convolution", "while", "dynamic-slice",
           "dynamic-update-slice", "gather", "scatter", "concatenate", "custom-call", "all-reduce")

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s([\w\-]+)\((.*)$")
_COMP = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)")


def parse_hlo(text: str) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """(instruction name -> {opcode, shape, calls}, computation -> [opcodes in it])."""
    instrs: dict[str, dict] = {}
    comps: dict[str, list[str]] = collections.defaultdict(list)
    comp = None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and "=" not in line.split("{")[0]:
            comp = m.group(1)
            continue
        m = _INSTR.match(line)
        if m and comp is not None:
            name, shape, opcode, rest = m.groups()
            instrs[name] = {"opcode": opcode, "shape": shape.strip(), "calls": _CALLS.findall(rest), "comp": comp}
            comps[comp].append(opcode)
    return instrs, comps


def _ops_inside(name: str, instrs: dict, comps: dict, depth: int = 0) -> list[str]:
    info = instrs.get(name)
    if info is None or depth > 3:
        return []
    out = [info["opcode"]]
    for c in info["calls"]:
        out += comps.get(c, [])
    return out


def category(name: str, instrs: dict, comps: dict) -> str:
    """Coarse kind of one executed op, for the 'what is not arithmetic' table."""
    if name.startswith("ynn_fusion") or name.startswith("xnn_fusion"):
        return "matmul (YNNPACK/XNNPACK fusion)"
    ops = set(_ops_inside(name, instrs, comps))
    base = re.sub(r"[.\d]+$", "", name)
    if {"dot", "convolution"} & ops or base in ("dot", "dot_general", "convolution"):
        return "matmul"
    if "custom-call" in ops:
        return "custom-call"
    if "while" in ops:
        return "while (loop control)"
    if {"dynamic-update-slice", "dynamic-slice"} & ops:
        return "dynamic-(update-)slice (scan stacking)"
    if {"gather", "scatter"} & ops:
        return "gather/scatter"
    if ops and ops <= {"transpose", "copy", "bitcast", "reshape", "parameter", "tuple", "get-tuple-element"}:
        return "transpose/copy"
    if "reduce" in ops:
        return "reduction fusion"
    if "exponential" in ops or "tanh" in ops or "log" in ops or "sine" in ops or "cosine" in ops:
        return "elementwise (transcendental)"
    if ops:
        return "elementwise"
    return "other/unknown"


_TABLE_ROW = re.compile(r"^(\d+) (.*)$")
_FIELD = re.compile(r"(\w+)=(\d+)")
_FRAME_ID = re.compile(r"stack_frame_id=(\d+)")


def source_lines(text: str) -> dict[str, str]:
    """Instruction name -> 'file.py:line' of the innermost project (ouro/) frame that made it,
    from the stack-frame tables XLA appends to the module text ('' when none is known)."""
    tables: dict[str, dict[int, str]] = {"FileNames": {}, "FunctionNames": {}, "FileLocations": {}, "StackFrames": {}}
    current = None
    for line in text.splitlines():
        if line.strip() in tables:
            current = line.strip()
            continue
        m = _TABLE_ROW.match(line) if current else None
        if m:
            tables[current][int(m.group(1))] = m.group(2)
        elif current and line.strip():
            current = None
    files = {k: v.strip('"') for k, v in tables["FileNames"].items()}
    locs = {k: dict((a, int(b)) for a, b in _FIELD.findall(v)) for k, v in tables["FileLocations"].items()}
    frames = {k: dict((a, int(b)) for a, b in _FIELD.findall(v)) for k, v in tables["StackFrames"].items()}

    def where(frame_id: int) -> str:
        seen = set()
        while frame_id in frames and frame_id not in seen:  # innermost first, walking to callers
            seen.add(frame_id)
            loc = locs.get(frames[frame_id].get("file_location_id", -1), {})
            path = files.get(loc.get("file_name_id", -1), "")
            if "/ouro/" in path and "site-packages" not in path:
                return f"{path[path.rindex('/ouro/') + 1:]}:{loc.get('line', '?')}"
            frame_id = frames[frame_id].get("parent_frame_id", -1)
        return ""

    out = {}
    for line in text.splitlines():
        m = _INSTR.match(line)
        f = _FRAME_ID.search(line) if m else None
        if f:
            out[m.group(1)] = where(int(f.group(1)))
    return out


def hlo_counts(text: str) -> dict[str, int]:
    """How many of each COUNTED opcode the optimised module holds (fused bodies included)."""
    instrs, _ = parse_hlo(text)
    c = collections.Counter(i["opcode"] for i in instrs.values())
    return {k: c.get(k, 0) for k in COUNTED}


def trace_events(fn, args_fn, steps: int) -> dict[str, float]:
    """Total seconds per executed-op name over `steps` calls (host Python lines excluded)."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory(prefix="ouro-prof-") as d:
        jax.profiler.start_trace(d)
        for _ in range(steps):
            fn()
        jax.profiler.stop_trace()
        path = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)[0]
        pd = ProfileData.from_file(path)
    # Events nest (a while loop contains its body's ops, the executor contains everything):
    # count each event's SELF time, i.e. minus the time of the events inside it.
    totals: dict[str, float] = collections.defaultdict(float)
    for plane in pd.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if line.name == "python" or not line.name.startswith("tf_XLA"):
                continue
            evs = sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events
                          if not e.name.startswith(("ThreadpoolListener", "end: "))), key=lambda t: (t[0], -t[1]))
            stack: list[list] = []  # [end_ns, name, self_ns]
            for start, dur, name in evs:
                while stack and stack[-1][0] <= start:
                    _, n, s = stack.pop()
                    totals[n] += s * 1e-9
                if stack:
                    stack[-1][2] -= dur
                stack.append([start + dur, name, dur])
            for _, n, s in stack:
                totals[n] += s * 1e-9
    return {k: v for k, v in totals.items() if not k.startswith(WAITS)}


# executor bookkeeping / waiting, not work
WAITS = ("ThunkExecutor", "SlinkyThreadPool", "ExecuteHelper")


def profile_case(kind: str, preset_name: str, dtype: str = "float32", steps: int = 3,
                 batch: int | None = None, top: int = 25, hlo_path: str = "") -> dict[str, Any]:
    from ouro.bench.cases import make_case

    case = make_case(kind, preset_name, dtype, batch)
    text = case.lower().compile().as_text()
    if hlo_path:
        from ouro.fileio import write_text

        write_text(hlo_path, text)
    case.call()  # warm-up (compiles through the jit cache)
    case.call()
    totals = trace_events(case.call, None, steps)
    instrs, comps = parse_hlo(text)
    total = sum(totals.values()) or 1.0
    by_cat: dict[str, float] = collections.defaultdict(float)
    for name, s in totals.items():
        by_cat[category(name, instrs, comps)] += s
    ops = sorted(totals.items(), key=lambda kv: -kv[1])[:top]

    def describe(name: str) -> str:
        info = instrs.get(name)
        if info is None:
            return ""
        inside = collections.Counter(_ops_inside(name, instrs, comps)[1:])
        body = ",".join(f"{k}x{v}" if v > 1 else k for k, v in inside.most_common(6)
                        if k not in ("parameter", "bitcast", "constant"))
        return f"{info['opcode']} {info['shape'][:48]} [{body}]"

    lines = source_lines(text)
    by_line: dict[str, float] = collections.defaultdict(float)  # non-matmul time per source line
    for name, sec in totals.items():
        if "matmul" not in category(name, instrs, comps):
            by_line[lines.get(name) or "(no ouro frame)"] += sec
    worst: dict[str, list] = collections.defaultdict(list)  # per category, its biggest ops
    for name, sec in sorted(totals.items(), key=lambda kv: -kv[1]):
        cat = category(name, instrs, comps)
        if len(worst[cat]) < 4:
            worst[cat].append({"op": name, "share": round(sec / total, 4), "what": describe(name)})
    return {
        "case": case.name, "by_category": dict(worst), "steps": steps, "op_seconds_per_step": total / steps,
        "categories": {k: round(v / total, 4) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": n, "share": round(s / total, 4), "what": describe(n)} for n, s in ops],
        "all_ops": {n: round(s / total, 5) for n, s in totals.items()},
        "non_matmul_by_source_line": {k: round(v / total, 4) for k, v in
                                      sorted(by_line.items(), key=lambda kv: -kv[1])[:top]},
        "hlo_counts": hlo_counts(text),
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"== {r['case']}: {r['op_seconds_per_step'] * 1e3:.1f} ms of op time per step ({r['steps']} steps traced)")
    print("categories:")
    for k, v in r["categories"].items():
        print(f"  {v * 100:6.2f}%  {k}")
    print("biggest ops per category:")
    for cat, ops in r["by_category"].items():
        print(f"  {cat}:")
        for o in ops:
            print(f"    {o['share'] * 100:6.2f}%  {o['op']:<26} {o['what']}")
    print("top ops:")
    for o in r["top_ops"]:
        print(f"  {o['share'] * 100:6.2f}%  {o['op']:<28} {o['what']}")
    print("non-matmul time by the ouro source line that made it:")
    for k, v in r["non_matmul_by_source_line"].items():
        print(f"  {v * 100:6.2f}%  {k}")
    print("HLO counts:", " ".join(f"{k}={v}" for k, v in r["hlo_counts"].items() if v))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ouro.bench.profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("train", "forward", "sample"))
    ap.add_argument("preset")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", default="", help="also write the result as JSON here")
    ap.add_argument("--hlo", default="", help="also write the optimised HLO text here")
    args = ap.parse_args(argv)
    r = profile_case(args.kind, args.preset, args.dtype, args.steps, args.batch, args.top, args.hlo)
    print_report(r)
    if args.json:
        from ouro.fileio import write_json

        write_json(args.json, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
