"""Embedding analysis: do Gemma-3 class-name embeddings cluster by meaning?

Statistics on cosine similarities of L2-normalised embeddings, by semantic group:
  within(g) = mean similarity over pairs of distinct classes both in g
  cross(g)  = mean similarity between classes in g and classes outside g
  overall within / cross = means over all same-group / different-group pairs; ratio = within / cross,
  gap = within - cross, gap_z = gap / std of all pair similarities; knn10 purity = share
  of each class's 10 nearest neighbours in its group (chance level beside it)
plus nearest neighbours of chosen classes, for the class names and for the buggy
"class_0" ... "class_999" placeholders side by side. Figures: group-sorted heatmap,
t-SNE / UMAP maps coloured by group, dog-breed cluster. `run_analysis` writes them all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

QUERIES = (207, 281, 963, 0, 409, 817)  # golden retriever, tabby, pizza, tench, analog clock, sports car


def cosine_matrix(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, np.float64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return emb @ emb.T


def _ratio(within: float, cross: float) -> float:
    # Only meaningful for positive cross similarity (true of mean-pooled LM embeddings).
    return within / cross if cross > 0 else float("nan")


def group_stats(sims: np.ndarray, groups: Sequence[str], order: Sequence[str]) -> dict:
    """Per-group and overall within / cross similarities (see module docstring)."""
    groups = np.asarray(groups)
    n = len(groups)
    same = groups[:, None] == groups[None, :]
    off_diag = ~np.eye(n, dtype=bool)
    per_group = {}
    for g in order:
        m = groups == g
        if m.sum() == 0:
            continue
        within = sims[np.ix_(m, m)][~np.eye(m.sum(), dtype=bool)]
        cross = sims[np.ix_(m, ~m)]
        w = float(within.mean()) if within.size else float("nan")
        c = float(cross.mean()) if cross.size else float("nan")
        per_group[g] = {"n": int(m.sum()), "within": w, "cross": c, "ratio": _ratio(w, c)}
    within_all = float(sims[same & off_diag].mean())
    cross_all = float(sims[~same].mean())
    return {"overall": {"within": within_all, "cross": cross_all, "ratio": _ratio(within_all, cross_all),
                        "gap": within_all - cross_all, "mean_offdiag": float(sims[off_diag].mean()),
                        # gap in units of the similarity spread: scale-free, comparable across encoders
                        "gap_z": (within_all - cross_all) / float(sims[off_diag].std()),
                        **knn_purity(sims, groups)}, "groups": per_group}


def knn_purity(sims: np.ndarray, groups: Sequence[str], k: int = 10) -> dict:
    """Fraction of each class's k nearest neighbours in its own group, and that fraction's
    expected value for a random neighbour set (a shift/scale-free companion to the ratio)."""
    groups = np.asarray(groups)
    n = len(groups)
    k = min(k, n - 1)
    s = sims.copy()
    np.fill_diagonal(s, -np.inf)
    top = np.argsort(-s, axis=1)[:, :k]
    purity = float((groups[top] == groups[:, None]).mean())
    counts = np.unique(groups, return_counts=True)[1]
    chance = float(((counts * (counts - 1)).sum()) / (n * (n - 1)))
    return {f"knn{k}_purity": purity, f"knn{k}_chance": chance}


def nearest_neighbours(sims: np.ndarray, names: Sequence[str], queries: Sequence[int], k: int = 5) -> dict:
    """{query name: [[neighbour name, similarity], ...]} excluding the query itself."""
    out = {}
    for q in queries:
        row = sims[q].copy()
        row[q] = -np.inf
        top = np.argsort(-row)[:k]
        out[names[q]] = [[names[j], round(float(row[j]), 4)] for j in top]
    return out


def centred(emb: np.ndarray) -> np.ndarray:
    """Remove the mean vector: mean-pooled LM embeddings share a large common direction."""
    x = emb - emb.mean(0, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def analyse(emb: np.ndarray, names: Sequence[str], groups: Sequence[str], order: Sequence[str],
            queries: Sequence[int], k: int = 5) -> dict:
    sims = cosine_matrix(emb)
    return {
        "stats": group_stats(sims, groups, order),
        "stats_centred": group_stats(cosine_matrix(centred(emb)), groups, order)["overall"],
        "neighbours": nearest_neighbours(sims, names, queries, k),
    }


def subset_indices(smoke: bool) -> np.ndarray:
    """All 1000 classes, or (smoke) every 20th class, a few dog breeds, and the query classes."""
    if not smoke:
        return np.arange(1000)
    return np.array(sorted(set(range(0, 1000, 20)) | set(range(151, 269, 12)) | set(QUERIES)))


def run_analysis(out_dir: str | os.PathLike, *, smoke: bool = False, pooling: str = "mean", names_style: str = "full",
                 methods: Sequence[str] | None = None, cache_dir=None, progress: bool = True) -> dict:
    """Embed class names and placeholders, compute statistics, write JSON + PNG figures into out_dir."""
    from ouro.analysis import embedding_plots as plots
    from ouro.analysis.groups import group_order, imagenet_groups
    from ouro.text.embed import embed
    from ouro.text.imagenet import class_names, placeholder_names

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idx = subset_indices(smoke)
    # UMAP's numba JIT alone takes ~30 s on 2 cores, so smoke runs draw t-SNE only.
    methods = tuple(methods) if methods is not None else (("tsne",) if smoke else ("tsne", "umap"))
    all_names, all_groups, order = class_names(names_style), imagenet_groups(), group_order()
    names = [all_names[i] for i in idx]
    groups = [all_groups[i] for i in idx]
    queries = [int(np.where(idx == q)[0][0]) for q in QUERIES]
    emb = embed(names, pooling=pooling, cache_dir=cache_dir, progress=progress)
    buggy = embed([placeholder_names()[i] for i in idx], pooling=pooling, cache_dir=cache_dir, progress=progress)
    short = [n.split(",")[0] for n in names]
    result = {
        "n_classes": len(idx),
        "smoke": smoke,
        "pooling": pooling,
        "names_style": names_style,
        "names": analyse(emb, short, groups, order, queries),
        "buggy_placeholders": analyse(buggy, [f"class_{i}" for i in idx], groups, order, queries),
        "figures": {},
    }
    result["figures"]["heatmap"] = plots.heatmap(emb, buggy, groups, order, out / "similarity_heatmap.png")
    for m in methods:
        result["figures"][m] = plots.scatter_map(emb, buggy, groups, order, out / f"{m}_map.png", method=m, quick=smoke)
    result["figures"]["dogs"] = plots.dog_cluster(emb, short, groups, out / "dog_breeds.png")
    # file names relative to out_dir: the JSON may be read on another machine (ouro report)
    result["figures"] = {k: Path(v).name for k, v in result["figures"].items()}
    path = out / "embedding_stats.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(result), indent=2, allow_nan=False))
    tmp.replace(path)
    return result


def _finite(obj):
    """NaN/inf -> None so embedding_stats.json is strict JSON (undefined ratios become null)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def summary_table(result: dict) -> str:
    """Markdown table: names vs placeholders, overall and per group."""
    a, b = result["names"]["stats"], result["buggy_placeholders"]["stats"]
    rows = ["| group | n | within (names) | cross (names) | ratio (names) | within (class_i) | cross (class_i) | ratio (class_i) |",
            "|---|---|---|---|---|---|---|---|"]
    for g, s in [("overall", a["overall"])] + list(a["groups"].items()):
        t = b["overall"] if g == "overall" else b["groups"][g]
        n = sum(v["n"] for v in a["groups"].values()) if g == "overall" else s["n"]
        rows.append(f"| {g} | {n} | {s['within']:.3f} | {s['cross']:.3f} | {s['ratio']:.3f} | "
                    f"{t['within']:.3f} | {t['cross']:.3f} | {t['ratio']:.3f} |")
    for key in ("gap", "gap_z", "knn10_purity", "knn10_chance"):
        rows.append(f"| overall {key} | | {a['overall'][key]:.3f} | | | {b['overall'][key]:.3f} | | |")
    return "\n".join(rows)


def neighbours_table(result: dict) -> str:
    """Markdown: each query's nearest neighbours, names vs placeholders."""
    a, b = result["names"]["neighbours"], result["buggy_placeholders"]["neighbours"]
    rows = ["| query | neighbours (names) | query (bug) | neighbours (class_i) |", "|---|---|---|---|"]
    for (qa, na), (qb, nb) in zip(a.items(), b.items()):
        fmt = lambda ns: ", ".join(f"{n} {s:.3f}" for n, s in ns)
        rows.append(f"| {qa} | {fmt(na)} | {qb} | {fmt(nb)} |")
    return "\n".join(rows)
