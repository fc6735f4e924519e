"""Embedding-analysis statistics, the shipped WordNet groups, and the figures."""

from pathlib import Path

import numpy as np
import pytest

from ouro.analysis import groups_build
from ouro.analysis.embeddings import cosine_matrix, group_stats, nearest_neighbours, summary_table
from ouro.analysis.groups import group_order, imagenet_groups


def test_group_stats_by_hand():
    # Two tight pairs at right angles: within = 1, cross = 0, and the ratio is undefined (nan).
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
    s = group_stats(cosine_matrix(emb), ["a", "a", "b", "b"], ["a", "b"])
    assert s["groups"]["a"]["within"] == 1.0 and s["groups"]["a"]["cross"] == 0.0
    assert np.isnan(s["groups"]["a"]["ratio"]) and np.isnan(s["overall"]["ratio"])
    emb = np.array([[1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]], float)
    sims = cosine_matrix(emb)
    s = group_stats(sims, ["a", "a", "b", "b"], ["a", "b"])
    assert s["groups"]["a"]["within"] == pytest.approx(0.6)
    assert s["groups"]["b"]["within"] == pytest.approx(0.6)
    cross = np.mean([sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3]])
    assert s["groups"]["a"]["cross"] == pytest.approx(cross)
    assert s["overall"]["within"] == pytest.approx(0.6)
    assert s["overall"]["ratio"] == pytest.approx(0.6 / cross)
    off = sims[~np.eye(4, dtype=bool)]
    assert s["overall"]["gap_z"] == pytest.approx((0.6 - cross) / off.std())


def test_overall_is_pair_weighted_and_groups_missing_from_subset_are_skipped():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((7, 5))
    sims = cosine_matrix(emb)
    groups = ["x"] * 4 + ["y"] * 3
    s = group_stats(sims, groups, ["x", "y", "z"])
    assert "z" not in s["groups"]
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j and groups[i] == groups[j]]
    assert s["overall"]["within"] == pytest.approx(np.mean([sims[i, j] for i, j in pairs]))


def test_knn_purity_and_chance():
    from ouro.analysis.embeddings import knn_purity

    emb = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]], float)
    out = knn_purity(cosine_matrix(emb), ["a", "a", "b", "b"], k=1)
    assert out == {"knn1_purity": 1.0, "knn1_chance": pytest.approx(4 / 12)}
    out = knn_purity(cosine_matrix(emb), ["a", "b", "a", "b"], k=1)
    assert out["knn1_purity"] == 0.0


def test_nearest_neighbours_exclude_self_and_sort():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.7, 0.7]], float)
    nn = nearest_neighbours(cosine_matrix(emb), ["a", "b", "c", "d"], [0], k=2)
    assert [n for n, _ in nn["a"]] == ["b", "d"]
    assert nn["a"][0][1] > nn["a"][1][1]


def test_shipped_groups():
    groups, order = imagenet_groups(), group_order()
    assert len(groups) == 1000 and order[0] == "dogs" and order[-1] == "other"
    assert [i for i, g in enumerate(groups) if g == "dogs"] == list(range(151, 269))
    expect = {0: "fish", 1: "fish", 281: "other mammals", 963: "food", 817: "vehicles", 409: "instruments/devices",
              14: "birds", 33: "reptiles/amphibians", 309: "insects/invertebrates", 610: "clothing", 497: "structures"}
    for i, g in expect.items():
        assert groups[i] == g, (i, groups[i])
    assert set(order) == set(groups) and len(order) == 12


def test_groups_build_parses_wordnet_format(tmp_path):
    (tmp_path / "index.noun").write_text(
        "  1 licence header line\n"
        "dog n 2 1 @ 2 1 00000300 00000400  \n"
        "animal n 1 1 @ 1 0 00000200  \n")
    (tmp_path / "data.noun").write_text(
        "  1 licence header line\n"
        "00000100 05 n 01 puppy 0 001 @ 00000300 n 0000 | a young dog  \n"
        "00000300 05 n 01 dog 0 001 @ 00000200 n 0000 | a dog  \n"
        "00000500 05 n 01 Lassie 0 001 @i 00000300 n 0000 | an instance  \n"
        "00000200 05 n 01 animal 0 000 | an animal  \n")
    index = groups_build.read_index(tmp_path / "index.noun")
    assert index["dog"] == ["00000300", "00000400"]
    hyp = groups_build.read_hypernyms(tmp_path / "data.noun")
    assert hyp["00000100"] == ["00000300"] and hyp["00000500"] == ["00000300"]
    assert groups_build.ancestors("00000500", hyp) == {"00000500", "00000300", "00000200"}


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="Debian wordnet-base not installed")
def test_shipped_groups_match_a_fresh_derivation():
    assert groups_build.derive(Path("/usr/share/wordnet")) == imagenet_groups()


def test_figures_and_table_from_synthetic_embeddings(tmp_path):
    from ouro.analysis import embedding_plots as plots
    from ouro.analysis.embeddings import analyse

    rng = np.random.default_rng(1)
    order = ["dogs", "fish", "other"]
    groups = ["dogs"] * 6 + ["fish"] * 5 + ["other"] * 5
    centres = {g: rng.standard_normal(16) * 3 for g in order}
    common = np.full(16, 1.5)  # like LM embeddings, every vector shares a direction: cross > 0
    emb = np.stack([common + centres[g] + rng.standard_normal(16) for g in groups])
    buggy = np.ones((16, 16)) + 0.01 * rng.standard_normal((16, 16))
    names = [f"n{i}" for i in range(16)]
    a, b = analyse(emb, names, groups, order, [0]), analyse(buggy, names, groups, order, [0])
    assert a["stats"]["overall"]["ratio"] > 1.5 > b["stats"]["overall"]["ratio"]
    assert a["neighbours"]["n0"][0][0] in names[1:6]  # a dog's nearest neighbour is a dog
    table = summary_table({"names": a, "buggy_placeholders": b})
    assert table.count("\n") == 2 + 3 + 4 and "| dogs | 6 |" in table and "knn10_purity" in table
    paths = [plots.heatmap(emb, buggy, groups, order, tmp_path / "h.png"),
             plots.scatter_map(emb, buggy, groups, order, tmp_path / "t.png", method="pca"),
             plots.dog_cluster(emb, names, groups, tmp_path / "d.png")]
    for p in paths:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_stats_json_is_strict():
    import json

    from ouro.analysis.embeddings import _finite

    doc = _finite({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
    assert doc == {"a": None, "b": [1.0, None], "c": {"d": 2}}
    json.dumps(doc, allow_nan=False)
