"""Figures for the embedding analysis (matplotlib, Agg-safe). Each returns the PNG path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(order: Sequence[str]) -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {g: cmap(i % 20) for i, g in enumerate(order)}


def _save(fig, path: Path, dpi: int = 110) -> str:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    tmp.replace(path)
    _plt().close(fig)
    return str(path)


def heatmap(emb, buggy, groups: Sequence[str], order: Sequence[str], path: Path) -> str:
    """Cosine similarity matrices with classes sorted by group, names vs placeholders."""
    from ouro.analysis.embeddings import cosine_matrix

    plt = _plt()
    rank = {g: i for i, g in enumerate(order)}
    perm = np.argsort([rank[g] for g in groups], kind="stable")
    sorted_groups = [groups[i] for i in perm]
    bounds = [i for i in range(1, len(perm)) if sorted_groups[i] != sorted_groups[i - 1]]
    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    for ax, e, title in ((axes[0], emb, "class names"), (axes[1], buggy, '"class_i" placeholders (bug)')):
        sims = cosine_matrix(e)[np.ix_(perm, perm)]
        # 1000x1000 pixels into a ~700 px panel: antialiased resampling shows the block
        # structure and keeps the PNG small (nearest gave 1.2 MB of aliasing noise)
        im = ax.imshow(sims, cmap="viridis", vmin=np.percentile(sims, 1), vmax=1.0, interpolation="antialiased")
        for b in bounds:
            ax.axhline(b - 0.5, color="w", lw=0.4)
            ax.axvline(b - 0.5, color="w", lw=0.4)
        starts = [0] + bounds
        ends = bounds + [len(perm)]
        ax.set_yticks([(s + e - 1) / 2 for s, e in zip(starts, ends)])
        ax.set_yticklabels([sorted_groups[s] for s in starts], fontsize=7)
        ax.set_xticks([])
        ax.set_title(f"cosine similarity, {title}")
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path, dpi=72)  # two 1000x1000 noisy matrices: keep the PNG well under 1 MB


def embed_2d(emb: np.ndarray, method: str, seed: int = 0, *, quick: bool = False) -> np.ndarray:
    """2-D map; quick=True (smoke runs) stops t-SNE after 250 iterations instead of 1000."""
    n = len(emb)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", metric="cosine",
                    max_iter=250 if quick else 1000, random_state=seed).fit_transform(emb)
    if method == "umap":
        import umap

        return umap.UMAP(n_neighbors=min(15, n - 1), metric="cosine", random_state=seed).fit_transform(emb)
    if method == "pca":
        x = emb - emb.mean(0)
        return x @ np.linalg.svd(x, full_matrices=False)[2][:2].T
    raise ValueError(f"method={method!r}; choose 'tsne', 'umap' or 'pca'")


def scatter_map(emb, buggy, groups: Sequence[str], order: Sequence[str], path: Path, *, method: str,
                quick: bool = False) -> str:
    plt = _plt()
    colours = _colours(order)
    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    groups = np.asarray(groups)
    for ax, e, title in ((axes[0], emb, "class names"), (axes[1], buggy, '"class_i" placeholders (bug)')):
        xy = embed_2d(np.asarray(e), method, quick=quick)
        for g in order:
            m = groups == g
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=8, color=colours[g], label=f"{g} ({m.sum()})")
        ax.set_title(f"{method.upper()} of Gemma-3 embeddings, {title}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, markerscale=2, loc="best")
    return _save(fig, path)


def dog_cluster(emb, names: Sequence[str], groups: Sequence[str], path: Path) -> str:
    """Left: similarity histograms dog-dog vs dog-other. Right: PCA of the dog breeds, labelled."""
    from ouro.analysis.embeddings import cosine_matrix

    plt = _plt()
    groups = np.asarray(groups)
    dogs = groups == "dogs"
    sims = cosine_matrix(emb)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    if dogs.sum() >= 2:
        dd = sims[np.ix_(dogs, dogs)][~np.eye(dogs.sum(), dtype=bool)]
        do = sims[np.ix_(dogs, ~dogs)].ravel()
        axes[0].hist(do, bins=50, alpha=0.6, density=True, label=f"dog - other class (mean {do.mean():.3f})")
        axes[0].hist(dd, bins=50, alpha=0.6, density=True, label=f"dog - dog breed (mean {dd.mean():.3f})")
        axes[0].set_xlabel("cosine similarity")
        axes[0].legend()
        axes[0].set_title("are dog breeds closer to each other?")
        xy = embed_2d(np.asarray(emb)[dogs], "pca") if dogs.sum() >= 3 else np.zeros((dogs.sum(), 2))
        axes[1].scatter(xy[:, 0], xy[:, 1], s=10)
        for (x, y), name in zip(xy, np.asarray(names)[dogs]):
            axes[1].annotate(name, (x, y), fontsize=5)
        axes[1].set_title(f"PCA of the {dogs.sum()} dog-breed embeddings")
    else:
        axes[0].text(0.5, 0.5, "fewer than 2 dog classes in this subset", ha="center")
    return _save(fig, path)
