"""Executed FLOPs of a compiled program, counted from its optimised HLO text.

XLA's `compiled.cost_analysis()` counts a while loop's body once, so a scanned stack of
layers (and the recompute remat puts inside it) is undercounted by the trip count. This
walks `compiled.as_text()` instead: every `dot` and `convolution`, in the entry computation
and in every computation it calls (fusions, calls, async wrappers), with a while loop's
body multiplied by its trip count (the `known_trip_count` XLA's trip-count annotator writes
into the loop's backend_config on CPU, GPU and TPU) and the most expensive branch of a
conditional. The SPMD-partitioned program is per device, so the count is per chip.

    dot          2 x prod(output dims) x prod(lhs contracting dims)
    convolution  2 x prod(output dims) x kernel input features x window taps, a tap
                 counted once per lhs_dilate step (TPU lowers matmuls, batched ones too, to
                 convolutions; zero padding is counted as executed)

Only matrix work is counted, as in the model's own accounting (ouro/model/accounting.py),
so the two compare directly: executed / model = 1 without remat, > 1 with it. A custom
call (e.g. cuDNN's fused attention) is not a dot: its FLOPs are missed and counted in
`custom_calls`. A loop whose trip count XLA could not derive is counted once and named in
`unknown_trip_counts`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) \((.*)\) -> .* \{$")
_PARAM = re.compile(r"([\w.\-]+): \w+\[([\d,]*)\]")
_ARRAY = re.compile(r"^\w+\[([\d,]*)\]")
_CALLED = re.compile(r"\b(calls|to_apply|body|true_computation|false_computation)=%([\w.\-]+)")
_CALLED_LIST = re.compile(r"\b(branch_computations|called_computations)=\{([^}]*)\}")


@dataclasses.dataclass
class HloFlops:
    flops: float  # dot + convolution FLOPs of one execution of the program (per device)
    dots: int  # dot / convolution instructions counted (static, not times trip counts)
    loops: list[int]  # known trip counts of the while loops met
    unknown_trip_counts: int  # loops counted once because XLA gave no trip count
    custom_calls: int  # custom calls met (their FLOPs, if any, are not counted)


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def _split_type(rest: str) -> tuple[str, str]:
    """'f32[2,4]{1,0} dot(...)...' or '(s32[], f32[2]) while(...)' -> (type, 'op(...)...')."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                return rest[: i + 1], rest[i + 1:].lstrip()
    head, _, tail = rest.partition(" ")
    return head, tail


def _operands(call: str) -> tuple[list[str], str]:
    """'dot(%a, %b), attrs' -> (['a', 'b'], 'attrs')."""
    start = call.index("(")
    depth = 0
    for i in range(start, len(call)):
        depth += {"(": 1, ")": -1}.get(call[i], 0)
        if depth == 0:
            return re.findall(r"%([\w.\-]+)", call[start:i]), call[i + 1:]
    return [], ""


def _attr_dims(attrs: str, key: str) -> list[int]:
    m = re.search(rf"\b{key}=\{{([\d,]*)\}}", attrs)
    return _dims(m.group(1)) if m else []


def _parse(text: str) -> tuple[dict[str, list], str | None]:
    """computation name -> [(opcode, out dims, operand dims list, attrs)], entry name."""
    comps: dict[str, list] = {}
    entry, current, shapes = None, None, {}
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            comps[current] = []
            shapes = {n: _dims(d) for n, d in _PARAM.findall(header.group(2))}
            if line.startswith("ENTRY"):
                entry = current
            continue
        if current is None or " = " not in line:
            continue
        lhs, rest = line.strip().split(" = ", 1)
        name = lhs.removeprefix("ROOT ").lstrip("%")
        typ, call = _split_type(rest)
        arr = _ARRAY.match(typ)
        if arr:
            shapes[name] = _dims(arr.group(1))
        opcode = call.split("(", 1)[0]
        operands, attrs = _operands(call) if "(" in call else ([], "")
        if opcode == "constant":  # keep the literal: a loop condition's bound is one
            operands, attrs = [], call
        comps[current].append((opcode, shapes.get(name), [shapes.get(o) for o in operands], attrs))
    return comps, entry


def _instr_flops(opcode: str, out: list[int] | None, ins: list, attrs: str) -> float:
    if out is None or not ins or ins[0] is None:
        return 0.0
    if opcode == "dot":
        lhs = ins[0]
        return 2.0 * math.prod(out) * math.prod(lhs[d] for d in _attr_dims(attrs, "lhs_contracting_dims"))
    if opcode == "convolution" and len(ins) > 1 and ins[1] is not None:
        labels = re.search(r"dim_labels=(\w+)_(\w+)->", attrs)
        kernel, lhs = ins[1], ins[0]
        if not labels or "i" not in labels.group(2):
            return 0.0
        # taps per window dim that can land on real input: TPU writes matmuls (batched ones
        # too) as convolutions whose extra dims are spatial, either with lhs_dilate = window
        # size or over an input of size 1 padded to the window: one real tap per output
        size = re.search(r"\bsize=([\dx]+)", attrs)
        dilate = re.search(r"\blhs_dilate=([\dx]+)", attrs)
        sizes = [int(v) for v in size.group(1).split("x")] if size else []
        dils = [int(v) for v in dilate.group(1).split("x")] if dilate else [1] * len(sizes)
        lhs_spatial = sorted((ch, lhs[i]) for i, ch in enumerate(labels.group(1)) if ch.isdigit())
        ins_sizes = [n for _, n in lhs_spatial] if len(lhs_spatial) == len(sizes) else sizes
        taps = math.prod(min(-(-w // d), n) for w, d, n in zip(sizes, dils, ins_sizes))
        return 2.0 * math.prod(out) * taps * kernel[labels.group(2).index("i")]
    return 0.0


def _bound_of(comps: dict[str, list], name: str | None) -> int | None:
    """The trip count of a counted loop `i < N` (i from 0) whose annotation XLA left out.

    XLA:TPU leaves `known_trip_count` off some scans (ouro's microbatch loop on v5e): their
    condition is one scalar integer constant N compared with LT against the counter, which
    lax.scan / fori_loop start at 0. Anything else stays unknown (counted once, reported)."""
    condition = comps.get(name or "", [])
    consts = [re.fullmatch(r"constant\((-?\d+)\)", a.strip()) for op, out, _, a in condition
              if op == "constant" and out == []]
    fused = [i for _, _, _, a in condition for _, callee in _CALLED.findall(a) for i in comps.get(callee, [])]
    compares = [a for op, _, _, a in condition + fused if op == "compare"]
    if len(consts) == 1 and consts[0] and len(compares) == 1 and "direction=LT" in compares[0]:
        return int(consts[0].group(1))
    return None


def count(hlo_text: str) -> HloFlops:
    """Executed dot/convolution FLOPs of an optimised HLO module (compiled.as_text())."""
    comps, entry = _parse(hlo_text)
    if entry is None:
        raise ValueError("hlo_flops.count: no ENTRY computation in the HLO text")
    stats = HloFlops(0.0, 0, [], 0, 0)
    memo: dict[str, float] = {}

    def walk(name: str, seen: tuple[str, ...]) -> float:
        if name in memo:
            return memo[name]
        if name in seen or name not in comps:  # recursion cannot happen in HLO; be safe
            return 0.0
        total = 0.0
        for opcode, out, ins, attrs in comps[name]:
            flops = _instr_flops(opcode, out, ins, attrs)
            if flops:
                stats.dots += 1
                total += flops
            if opcode == "custom-call":
                stats.custom_calls += 1
            if opcode == "while":
                body = re.search(r"\bbody=%([\w.\-]+)", attrs)
                known = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', attrs)
                cond = re.search(r"\bcondition=%([\w.\-]+)", attrs)
                trip = int(known.group(1)) if known else _bound_of(comps, cond.group(1) if cond else None)
                if trip is not None:
                    stats.loops.append(trip)
                else:
                    stats.unknown_trip_counts += 1
                total += (trip or 1) * walk(body.group(1), seen + (name,)) if body else 0
                continue
            for key, callee in _CALLED.findall(attrs):
                total += walk(callee, seen + (name,))
            for key, callees in _CALLED_LIST.findall(attrs):
                costs = [walk(c.strip().lstrip("%"), seen + (name,)) for c in callees.split(",") if c.strip()]
                if costs:
                    total += max(costs) if key == "branch_computations" else sum(costs)
        memo[name] = total
        return total

    stats.flops = walk(entry, ())
    return stats


def summary(stats: HloFlops) -> dict:
    """JSON-ready fields for a plan row."""
    return json.loads(json.dumps(dataclasses.asdict(stats)))
