"""The embedded default dataset: scikit-learn's handwritten digits (no download).

1,797 images of 8x8 pixels with values 0..16 and 10 classes, upsampled to 16x16 (bilinear)
single-channel NHWC in [-1, 1] (pixel-space diffusion: no VAE is available offline).
The train/test split is stratified with a fixed seed, so it is the same on every machine.
Conditioning: one 640-d Gemma-3 embedding of a caption per class ("a handwritten digit
seven"), cached in `digit_captions.json` next to this file.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from ouro.fileio import write_text

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTIONS = tuple(f"a handwritten digit {n}" for n in NAMES)
EMBEDDINGS_FILE = Path(__file__).with_name("digit_captions.json")
IMAGE_SIZE = 16
TEST_FRACTION = 0.2  # 360 test images: enough for a stable Frechet floor


@dataclasses.dataclass(frozen=True)
class Digits:
    x_train: np.ndarray  # (N, 16, 16, 1) float32 in [-1, 1]
    y_train: np.ndarray  # (N,) int32
    x_test: np.ndarray
    y_test: np.ndarray
    class_ctx: np.ndarray  # (10, 640) float32: one context vector per class
    context_source: str  # "gemma" or "random"

    def ctx(self, labels: np.ndarray) -> np.ndarray:
        """(B, 1, 640) context tokens for integer labels."""
        return self.class_ctx[np.asarray(labels)][:, None, :]

    def train_arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x_train, "ctx": self.ctx(self.y_train), "label": self.y_train}


def upsample(images_8x8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) in 0..16 -> (N, 16, 16, 1) float32 in [-1, 1] (bilinear, edge-aligned)."""
    from skimage.transform import resize

    x = images_8x8.astype(np.float32) / 16.0
    up = resize(x, (len(x), IMAGE_SIZE, IMAGE_SIZE), order=1, mode="edge", anti_aliasing=False)
    return (up * 2.0 - 1.0).astype(np.float32)[..., None]


def random_class_context(dim: int = 640, seed: int = 0) -> np.ndarray:
    """Unit random vectors: a stand-in when Gemma-3 embeddings are unavailable."""
    v = np.random.default_rng(seed).normal(size=(len(NAMES), dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def gemma_class_context(*, compute: bool = True) -> np.ndarray:
    """(10, 640) Gemma-3 embeddings of CAPTIONS, from the cached file or `ouro.text.embed`."""
    if EMBEDDINGS_FILE.exists():
        data = json.loads(EMBEDDINGS_FILE.read_text())
        if tuple(data["captions"]) != CAPTIONS:
            raise ValueError(f"{EMBEDDINGS_FILE}: captions differ from ouro.data.digits.CAPTIONS")
        return np.asarray(data["embeddings"], np.float32)
    if not compute:
        raise FileNotFoundError(f"{EMBEDDINGS_FILE} is missing")
    from ouro.text import embed  # heavy: converts the GGUF weights on first use

    emb = np.asarray(embed(list(CAPTIONS)), np.float32)
    write_embeddings(emb)
    return emb


def write_embeddings(emb: np.ndarray) -> None:
    payload = {"captions": list(CAPTIONS), "model": "gemma-3-270m mean-pooled, L2-normalised",
               "embeddings": [[round(float(v), 7) for v in row] for row in emb]}
    write_text(EMBEDDINGS_FILE, json.dumps(payload))


def load_digits(context: str = "gemma", *, seed: int = 0) -> Digits:
    """The digits with a deterministic stratified split and per-class context vectors.

    `context`: "gemma" (cached Gemma-3 caption embeddings; falls back to "random" with a
    warning if neither the cache nor the text encoder is available) or "random".
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x, y = upsample(d.images), d.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, stratify=y,
                                              random_state=seed)
    if context == "gemma":
        try:
            class_ctx = gemma_class_context()
        except Exception as e:  # noqa: BLE001 - any failure of the optional encoder
            warnings.warn(f"Gemma-3 caption embeddings unavailable ({e}); using random class vectors")
            context, class_ctx = "random", random_class_context()
    elif context == "random":
        class_ctx = random_class_context()
    else:
        raise ValueError(f"data.context={context!r}: expected 'gemma' or 'random'")
    return Digits(x_tr, y_tr, x_te, y_te, class_ctx, context)
