"""The report's embedding section: what notebooks/embedding_analysis.py found, for a reader.

It reads embedding_stats.json (ouro.analysis.embeddings.run_analysis writes it) and says in
prose and three tables how the class-name embeddings cluster by WordNet group, next to the
"class_0" … "class_999" placeholders: the headline statistics, the per-group similarities
and the nearest neighbours; then the figures. Paths are never printed from the JSON (older
files recorded absolute paths of the machine that ran them): figures are found beside it.
"""

from __future__ import annotations

from typing import Any

FIGURES = ("similarity_heatmap.png", "tsne_map.png", "umap_map.png", "dog_breeds.png")


def _num(v: Any, spec: str = ".4g") -> str:  # 4 digits: what nearest_neighbours keeps
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "—"


def _pct(v: Any) -> str:
    return f"{100 * v:.0f}%" if isinstance(v, (int, float)) else "—"


def _follows_schema(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(data.get(k), dict) and isinstance(data[k].get("stats"), dict) and "overall" in data[k]["stats"]
        for k in ("names", "buggy_placeholders"))


def headline_table(data: dict) -> str:
    from ouro.report.markdown import table

    a, b = data["names"], data["buggy_placeholders"]
    oa, ob = a["stats"]["overall"], b["stats"]["overall"]
    ca, cb = a.get("stats_centred") or {}, b.get("stats_centred") or {}
    rows = [
        ["mean similarity of two different classes", _num(oa.get("mean_offdiag")), _num(ob.get("mean_offdiag"))],
        ["within a group (*within*)", _num(oa.get("within")), _num(ob.get("within"))],
        ["across groups (*cross*)", _num(oa.get("cross")), _num(ob.get("cross"))],
        ["within / cross", _num(oa.get("ratio")), _num(ob.get("ratio"))],
        ["within − cross, in standard deviations of all pairs", _num(oa.get("gap_z"), ".3g"), _num(ob.get("gap_z"), ".3g")],
        ["10 nearest neighbours in the class's own group", _pct(oa.get("knn10_purity")), _pct(ob.get("knn10_purity"))],
        ["… expected by chance", _pct(oa.get("knn10_chance")), _pct(ob.get("knn10_chance"))],
        ["after removing the mean vector: within − cross, in standard deviations", _num(ca.get("gap_z"), ".3g"),
         _num(cb.get("gap_z"), ".3g")],
        ["after removing the mean vector: neighbours in own group", _pct(ca.get("knn10_purity")),
         _pct(cb.get("knn10_purity"))],
    ]
    return table(["cosine similarity", "class names", "placeholders"], rows)


def groups_table(data: dict) -> str:
    from ouro.report.markdown import table

    ga, gb = data["names"]["stats"].get("groups") or {}, data["buggy_placeholders"]["stats"].get("groups") or {}
    rows = [[g, str(s.get("n", "—")), _num(s.get("within")), _num(s.get("cross")), _num(s.get("ratio")),
             _num((gb.get(g) or {}).get("ratio"))] for g, s in ga.items()]
    return table(["group", "classes", "within", "cross", "within / cross", "within / cross, placeholders"], rows)


def neighbours_table(data: dict) -> str:
    from ouro.report.markdown import table

    def listed(ns: Any) -> str:
        ok = [n for n in ns or [] if isinstance(n, (list, tuple)) and len(n) == 2]
        return ", ".join(f"{name} ({_num(sim)})" for name, sim in ok).replace("|", "\\|") or "—"

    a, b = data["names"].get("neighbours") or {}, data["buggy_placeholders"].get("neighbours") or {}
    rows = [[qa, listed(na), qb, listed(nb)] for (qa, na), (qb, nb) in zip(a.items(), b.items())]
    return table(["class", "nearest class names (cosine)", "placeholder", "nearest placeholders (cosine)"], rows)


def _index_gap(neighbours: dict) -> float | None:
    """Median |i - j| between a placeholder class_i and its listed neighbours class_j."""
    import re

    def idx(name: Any) -> int | None:
        m = re.fullmatch(r"class_(\d+)", str(name))
        return int(m.group(1)) if m else None

    gaps = [abs(idx(q) - idx(n[0])) for q, ns in neighbours.items() for n in ns or []
            if idx(q) is not None and isinstance(n, (list, tuple)) and n and idx(n[0]) is not None]
    if not gaps:
        return None
    import statistics

    return float(statistics.median(gaps))


def describe(data: dict) -> str:
    """Prose and tables for one embedding_stats.json in the layout run_analysis writes."""
    oa, ob = data["names"]["stats"]["overall"], data["buggy_placeholders"]["stats"]["overall"]
    n = data.get("n_classes")
    intro = (f"Gemma-3 270M embeddings of {n:,} ImageNet class names" if isinstance(n, int) else
             "Gemma-3 270M embeddings of the ImageNet class names")
    intro += (f" ({data.get('pooling', '?')}-pooled, names written `{data.get('names_style', '?')}`"
              + (", a smoke subset" if data.get("smoke") else "") + "), side by side with the placeholder texts "
              "\"class_0\" … \"class_999\" a bug once fed the model instead. Groups are WordNet categories "
              "(dogs, birds, vehicles, …); *within* is the mean cosine similarity of two classes of one group, "
              "*cross* of two classes of different groups.")
    purity, chance = oa.get("knn10_purity"), oa.get("knn10_chance")
    finding = ""
    if isinstance(purity, (int, float)) and isinstance(chance, (int, float)):
        finding = (f"The class names {'cluster by meaning' if purity > chance else 'do not cluster by group beyond chance'}: "
                   f"{_pct(purity)} of each class's 10 nearest neighbours are in its own group (chance: "
                   f"{_pct(chance)}), with a within/cross ratio of {_num(oa.get('ratio'))}. ")
    finding += f"The placeholders are near-identical texts (mean similarity {_num(ob.get('mean_offdiag'))})"
    gap = _index_gap(data["buggy_placeholders"].get("neighbours") or {})
    finding += (f": a placeholder's nearest neighbours are the placeholders with nearby numbers (median "
                f"{gap:g} apart), so any grouping they show follows ImageNet's class order, not meaning."
                if gap is not None and gap <= 10 else ".")
    return "\n\n".join([intro, finding, headline_table(data), "Per group:", groups_table(data),
                        "Nearest neighbours of a few classes:", neighbours_table(data)])


def _fallback(data: Any) -> str:
    """Another layout: its top-level numbers and simple tables, nested keys not dumped."""
    from ouro.report.markdown import _is_records, _is_scalar, _records_table, table

    if not isinstance(data, dict):
        return "> embedding_stats.json is not an object; nothing to show."
    parts = ["embedding_stats.json is not in the layout `ouro.analysis.embeddings` writes; its top-level values:"]
    scalars = [[k, v] for k, v in data.items() if _is_scalar(v) and not (isinstance(v, str) and "/" in v)]
    if scalars:
        parts.append(table(["value", ""], scalars))
    parts += [f"{k}:\n\n{_records_table(v)}" for k, v in data.items() if _is_records(v)]
    return "\n\n".join(parts)


def section_embeddings(ctx: Any) -> str:
    """(ctx: ouro.report.detail.Context) -> Markdown."""
    from ouro.report.detail import not_yet
    from ouro.report.runs import read_json

    parts = ["## Embedding analysis"]
    found = [r for r in ctx.runs if (r.path / "embedding_stats.json").exists()]
    if not found:
        return "\n\n".join(parts + [not_yet("no embedding_stats.json under outputs/", "ouro run notebooks/embedding_analysis.py")])
    for r in found:
        data = read_json(r.path / "embedding_stats.json")
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        if data is None:
            parts.append("> embedding_stats.json is unreadable.")
            continue
        parts.append(describe(data) if _follows_schema(data) else _fallback(data))
        parts += [ctx.figs.add(r.name, r.path / f, f.removesuffix(".png").replace("_", " "))
                  for f in FIGURES if (r.path / f).is_file()]
    return "\n\n".join(parts)
