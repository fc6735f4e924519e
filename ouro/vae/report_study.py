"""The text-conditioning study's tables (notebooks/text_conditioning.py) and its report section:
runs that wrote text_conditioning.json."""

from __future__ import annotations

from typing import Any

ATTRS = ("colour", "shape", "size", "position", "all")


def _interval(row: dict[str, Any]) -> str:
    lo, hi = row.get("interval", (0.0, 1.0))
    return "all t" if (lo, hi) == (0.0, 1.0) else f"t in [{lo:g}, {hi:g}]"


def _f(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def study_tables(report: dict[str, Any]) -> str:
    """Markdown: the setup line, the per-arm table (steps, FLOPs, seconds, per-attribute
    accuracy per CFG setting), the ceiling and the learning curves."""
    from ouro.report.markdown import table

    arms = report["arms"]
    head = (f"Every arm: {report['budget_flops'] / 1e12:.2f} training TFLOP (the pooled arm's "
            f"{report['budget_steps']} steps x batch {report['model']['batch_size']}; XUT D{report['model']['dim']}, "
            f"depth {report['model']['depth']}, TREAD {report['model']['tread_rate']}). Scored on {report['n_eval']} "
            f"held-out images (shapes seed {report['test_seed']}; {report['heldout_seen']} of their captions also occur "
            f"among the {report['captions_unique']} distinct captions of the {report['n_images']} training images), "
            f"{report['sample_steps']} Euler steps, noise seed {report['eval_seed']}; per-token text T = "
            f"{report['text_tokens']}; autoencoder {report['vae']['steps']} steps, "
            f"{report['vae']['test_psnr_db']:.2f} dB.")
    rows = [[name, "—", "—", "—", "—", "—", *(_f(report["ceiling"][name][k]) for k in ATTRS), "—", "—"]
            for name in ("real", "reconstructed")]
    for arm, a in arms.items():
        for r in a["rows"]:
            rows.append([arm, str(a["steps"]), f"{a['train_flops'] / 1e12:.2f}", _f(a.get("wall_s_total"), ".0f"),
                         f"{r['cfg_scale']:g}", _interval(r), *(_f(r[k]) for k in ATTRS),
                         _f(r.get("all_seen")), _f(r.get("all_unseen"))])
    main = table(["arm", "steps", "TFLOP", "train s", "CFG", "CFG when", *ATTRS, "all (seen caption)",
                  "all (unseen caption)"], rows)
    curve_rows = []
    for arm, a in arms.items():
        per_step = a["train_flops"] / max(a["steps"], 1)
        for p in a.get("curve", []):
            curve_rows.append([arm, str(p["step"]), f"{p['step'] * per_step / 1e12:.2f}", *(_f(p[k]) for k in ATTRS)])
    curve = table(["arm", "step", "TFLOP", *ATTRS], curve_rows)
    losses = table(["arm", "final loss", "s/step", "loss per t-bin (t = 0 … 1)"],
                   [[arm, _f(a.get("final_loss"), ".4f"), _f((a.get("wall_s_total") or 0) / max(a["steps"], 1), ".2f"),
                     " ".join(_f(v) for v in a.get("loss_t_bins") or [])] for arm, a in arms.items()])
    best = report.get("best", {})
    return "\n\n".join([
        head, main,
        f"Best: **{best.get('arm')}** at CFG {best.get('cfg_scale', 0):g}: whole-caption "
        f"{best.get('all', float('nan')):.3f} (target 0.5; reconstructions {report['ceiling']['reconstructed']['all']:.3f}).",
        f"Learning curves ({report['curve_n']} held-out captions, CFG {report['curve_cfg']:g}, EMA weights of each "
        f"checkpoint):", curve, losses, *_limits(report)])


def _reading(report: dict[str, Any]) -> str:
    """Shape and size among the objects the scorer found (colour = found: an object missing
    counts wrong everywhere), against chance (shape 1/3, size 1/2): which attribute a model
    has not learnt, apart from not drawing the object at all."""
    from ouro.report.markdown import table

    def row(name: str, r: dict[str, Any]) -> list[str]:
        found = r.get("colour") or 0.0
        given = [_f(r[k] / found if found else None) for k in ("shape", "size")]
        return [name, _f(found), *given]

    rows = [row(f"{name} images", report["ceiling"][name]) for name in ("real", "reconstructed")]
    for arm, a in report["arms"].items():
        best = max(a["rows"], key=lambda r: (r["all"], r["colour"]))
        rows.append(row(f"{arm}, CFG {best['cfg_scale']:g}, {_interval(best)}", best))
    cap = report.get("capacity")
    if cap:
        best = max(cap["rows"], key=lambda r: (r["all"], r["colour"]))
        rows.append(row(f"capacity check ({cap['captions']} captions), CFG {best['cfg_scale']:g}", best))
    return ("Reading the attributes apart (colour = the object was found; shape and size among found "
            "objects; chance 0.333 and 0.500):\n\n" + table(["images", "found", "shape, given found", "size, given found"], rows))


def _limits(report: dict[str, Any]) -> list[str]:
    """The 'what limits it' checks, where the run made them: the capacity check (the tokens
    arm on a closed set of K captions) and the best arm at more sampler steps."""
    from ouro.report.markdown import table

    out = []
    cap = report.get("capacity")
    if cap:
        rows = [[str(cap["steps"]), f"{cap['train_flops'] / 1e12:.2f}", _f(cap.get("final_loss"), ".4f"),
                 f"{r['cfg_scale']:g}", *(_f(r[k]) for k in ATTRS)] for r in cap["rows"]]
        per_step = cap["train_flops"] / max(cap["steps"], 1)
        curve = [[str(p["step"]), f"{p['step'] * per_step / 1e12:.2f}", *(_f(p[k]) for k in ATTRS)]
                 for p in cap.get("curve", [])]
        out += [f"Capacity check: the tokens arm trained on {cap['captions']} distinct captions only "
                f"({cap['n_images']} images), scored on {cap['n_eval']} new images (seed {report['test_seed']}) "
                f"of the same captions:",
                table(["steps", "TFLOP", "final loss", "CFG", *ATTRS], rows),
                f"Its learning curve ({report['curve_n']} of those images, CFG {report['curve_cfg']:g}):",
                table(["step", "TFLOP", *ATTRS], curve)]
    out += [_reading(report)]
    steps = report.get("sampler_steps") or []
    if steps:
        best = report.get("best", {})
        rows = [[str(best.get("steps", report["sample_steps"])), *(_f(best.get(k)) for k in ATTRS)]]
        rows += [[str(r["steps"]), *(_f(r[k]) for k in ATTRS)] for r in steps]
        out += [f"Sampler steps: the best arm ({best.get('arm')}, CFG {best.get('cfg_scale', 0):g}) with more "
                f"Euler steps:", table(["Euler steps", *ATTRS], rows)]
    return out


def section_text_conditioning(ctx: Any) -> str:
    """(ctx: ouro.report.detail.Context) -> Markdown."""
    from ouro.report.runs import read_json

    parts = ["## Text conditioning study (pooled vs per-token text, flow knobs, equal FLOPs)"]
    found = [r for r in ctx.runs if (r.path / "text_conditioning.json").exists()]
    if not found:
        return "\n\n".join(parts + ["> Not yet run: no text_conditioning.json under outputs/ "
                                    "(`ouro run notebooks/text_conditioning.py --run-name text_conditioning`)."])
    for r in found:
        data = read_json(r.path / "text_conditioning.json")
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        if not isinstance(data, dict) or "arms" not in data:
            parts.append("> text_conditioning.json is unreadable.")
            continue
        parts.append(study_tables(data))
        scale = data.get("best", {}).get("cfg_scale", 3.0)
        arms = [(arm, arm) for arm in data["arms"]]
        if data.get("capacity"):
            arms.append(("capacity/tokens", f"capacity check ({data['capacity']['captions']} captions)"))
        for sub, what in arms:
            grid = r.path / sub / "study_samples" / f"cfg{scale:g}_t0-1_grid.png"
            if grid.exists():
                parts.append(ctx.figs.add(r.name, grid, f"{r.name}: {what}, CFG {scale:g}",
                                          rel=grid.relative_to(r.path)))
    return "\n\n".join(parts)
