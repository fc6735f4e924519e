"""What a run is asked to draw: prompts or classes -> the model's condition, one grid row each.

    req = request(s, prompts=["a large red circle above a small blue square"], per_row=4)
    req = request(s, classes=[3, 7])      # digits / class-labelled runs (no args: every class)
    sample_images(s, req.ctx, ctx_mask=req.ctx_mask, ...)   # req.rows: the row of each sample

The form follows the model's declared input (`condition_input`, as the trainer reads its
batch), so every family samples the same way: pooled text (XUT, DiT cond=text, MMDiT) is
embedded with ouro.text.embed as the dataset's captions were; per-token text (MMDiT
text_input=tokens) with the dataset's recorded encoder settings (encode_prompts); class ids
(DiT cond=class) pass as ints; a digits run's classes index its caption-embedding table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from ouro.errors import UserError

ASK_PROMPTS = "give prompts (ouro sample/sweep --prompt TEXT or --prompts FILE; notebook: -p prompts '[\"...\"]')"


@dataclasses.dataclass(frozen=True)
class Request:
    kind: str  # "prompt" or "class"
    values: tuple  # the prompts (str) or class ids (int): one grid row each
    names: tuple[str, ...]  # the row labels shown in the grid's margin
    per_row: int  # samples per prompt / class
    ctx: Any  # (N, ...) what the model reads: pooled (N, 1, E), tokens (N, T, E) or labels (N,)
    ctx_mask: np.ndarray | None  # (N, T) per-token text only

    @property
    def rows(self) -> np.ndarray:
        """(N,) the row (prompt / class position) of each sample, row-major."""
        return np.repeat(np.arange(len(self.values)), self.per_row)

    def describe(self) -> dict[str, Any]:
        """The request as recorded in manifests and hashed into output names."""
        return {"prompts" if self.kind == "prompt" else "classes": list(self.values), "per_prompt": self.per_row}

    def label(self, i: int) -> dict[str, Any]:
        """Manifest fields of sample i: its prompt or class."""
        v = self.values[int(self.rows[i])]
        return {"prompt": v} if self.kind == "prompt" else {"class": int(v), "name": self.names[int(self.rows[i])]}


def class_count(s: Any) -> int | None:
    """How many classes the run can draw by id: its class table's rows, the label embedding
    of a class-conditioned model, or None (text-only run)."""
    from ouro.model.registry import condition_input

    if condition_input(s.cfg.model) == "label":
        return int(s.cfg.model.num_classes)
    return None if s.class_ctx is None else len(s.class_ctx)


def _what(s: Any) -> str:
    from ouro.model.registry import condition_input, family_of

    kind = {"ctx": "pooled text", "ctx_tokens": "per-token text", "label": "class ids"}
    reads = kind.get(condition_input(s.cfg.model), "?")
    return f"{s.cfg.data.kind} data, {family_of(s.cfg.model).name} reading {reads}"


def request(s: Any, *, prompts: Sequence[str] | None = None, classes: Sequence[int] | None = None,
            per_row: int = 10) -> Request:
    """The condition for `per_row` samples of each prompt, or of each class (default: every
    class of a run that has a class table). Bad requests are one-line UserErrors."""
    from ouro.model.registry import condition_input

    prompts, classes = list(prompts or []), list(classes or [])
    if per_row < 1:
        raise UserError(f"per prompt/class: expected at least 1 sample, got {per_row}")
    if prompts and classes:
        raise UserError("give prompts or classes, not both (one grid is one kind of condition)")
    mode = condition_input(s.cfg.model)
    if prompts:
        bad = [p for p in prompts if not isinstance(p, str) or not p.strip()]
        if bad:
            raise UserError(f"prompts: expected non-empty text, got {bad[0]!r}")
        if mode == "label":
            raise UserError(f"this run ({_what(s)}) reads class ids, not text: give classes (--class K)")
        if s.cfg.data.kind == "digits" and getattr(s.cfg.data, "context", "") == "random":
            raise UserError("this digits run was trained with data.context=random (random class vectors, "
                            "not caption embeddings), so text means nothing to it: give classes (--class K)")
        rows = np.repeat(np.arange(len(prompts)), per_row)
        if mode == "ctx_tokens":
            from ouro.train.sample import encode_prompts

            tokens, mask = encode_prompts(s, prompts)  # (P, T, E), (P, T): as the dataset's captions
            ctx, ctx_mask = tokens[rows], mask[rows]
        else:
            from ouro.text import embed

            ctx, ctx_mask = np.asarray(embed(prompts, progress=False), np.float32)[rows][:, None, :], None  # (N, 1, E)
        return Request("prompt", tuple(prompts), tuple(prompts), per_row, ctx, ctx_mask)
    n = class_count(s)
    if n is None:
        raise UserError(f"this run ({_what(s)}) has no class table: {ASK_PROMPTS}")
    classes = classes or list(range(min(n, 10)))
    out = [k for k in classes if not 0 <= int(k) < n]
    if out:
        raise UserError(f"class {out[0]}: this run has classes 0..{n - 1}")
    classes = [int(k) for k in classes]
    labels = np.repeat(np.asarray(classes, np.int32), per_row)
    names = tuple(str(k) if s.cfg.data.kind == "digits" else f"class {k}" for k in classes)
    return Request("class", tuple(classes), names, per_row, s.context(labels), None)
