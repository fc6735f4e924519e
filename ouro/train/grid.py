"""The labelled sample grid: one block of images per prompt or class, its label in a margin
column on the left (wrapped to the column, never over a picture), a title line above.

    save_grid(images, labels, "grid.png", row_names=prompts, title="run · step 400 · CFG 3")

Small samples are enlarged for viewing with a Lanczos filter, so a 16x16 digit is a 64 px
cell (the grid only: the per-image PNGs `ouro sample` writes stay at native resolution).
The labels and title are also in the PNG's metadata (`PIL.Image.open(p).text`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ouro.fileio import atomic_path
from ouro.train.png import to_uint8

CELL_MIN = 64  # px: samples smaller than this are enlarged by a whole factor (16 px -> 4x)
GAP = 2  # px of background between cells
TEXT_PAD = 6  # px around text in the margin and the title band
MAX_LABEL_LINES = 8  # a longer prompt is cut with an ellipsis here (it stays whole in the metadata)
BACKGROUND, INK = (255, 255, 255), (0, 0, 0)


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Where render_grid put things (pixels of the canvas): for tests and overlays."""
    cells: tuple[tuple[int, int, int, int] | None, ...]  # per input image: (top, left, height, width); None: not drawn
    margin: int  # width of the label column (x < margin holds no image)
    header: int  # height of the title band (y < header holds no image)
    scale: int  # enlargement factor of the samples


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:  # matplotlib (a dependency) ships DejaVu Sans: the same glyphs on every machine
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def wrap(text: str, font, width: float, max_lines: int = MAX_LABEL_LINES) -> list[str]:
    """Greedy word wrap to `width` pixels; a word wider than the column is split by letters."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        while len(word) > 1 and font.getlength(word) > width:
            cut = 1
            while cut < len(word) and font.getlength(word[:cut + 1]) <= width:
                cut += 1
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(word[:cut])
            word = word[cut:]
        cand = f"{cur} {word}" if cur else word
        if font.getlength(cand) <= width:
            cur = cand
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "…"]
    return lines or [""]


def _line_height(font) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent + 2


def render_grid(images: np.ndarray, labels: Sequence, *, per_row: int = 10, title: str = "",
                row_names: Sequence[str] | None = None, upscale: int | None = None,
                wrap_rows: bool = False) -> tuple[np.ndarray, GridLayout]:
    """(H, W, 3) uint8 canvas: one block per distinct label (in order of first appearance),
    the block's name in the margin column; its first `per_row` samples in one line, or with
    wrap_rows all of them, in lines of `per_row`."""
    from PIL import Image, ImageDraw

    images = np.asarray(images)
    labels = np.asarray(labels)
    n, h, w = images.shape[:3]
    groups = list(dict.fromkeys(labels.tolist()))
    names = [str(row_names[i]) if row_names is not None else str(k) for i, k in enumerate(groups)]
    scale = upscale or max(1, math.ceil(CELL_MIN / max(h, w)))
    ch, cw = h * scale, w * scale
    font = _font(max(11, min(16, ch // 5)))
    title_font = _font(max(12, min(17, ch // 5 + 1)))
    lh = _line_height(font)
    members = [np.flatnonzero(labels == k) for k in groups]
    if not wrap_rows:
        members = [m[:per_row] for m in members]
    cols = max(1, min(per_row, max(len(m) for m in members)))
    images_w = cols * (cw + GAP) + GAP
    # the label column: as wide as the longest name needs, up to ~3 cells (then it wraps)
    cap = max(160, 3 * cw)
    widest = max(font.getlength(s) for s in names)
    text_w = int(min(cap, widest) + 1)
    margin = text_w + 2 * TEXT_PAD
    wrapped = [wrap(s, font, text_w) for s in names]
    total_w = margin + images_w
    title_lines = wrap(title, title_font, total_w - 2 * TEXT_PAD, max_lines=3) if title else []
    header = len(title_lines) * _line_height(title_font) + 2 * TEXT_PAD if title_lines else GAP
    heights = [max(math.ceil(len(m) / cols) * (ch + GAP), len(t) * lh + 2 * TEXT_PAD)
               for m, t in zip(members, wrapped)]
    canvas = Image.new("RGB", (total_w, header + sum(heights) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = TEXT_PAD
    for line in title_lines:
        draw.text((TEXT_PAD, y), line, fill=INK, font=title_font)
        y += _line_height(title_font)
    cells: list[tuple[int, int, int, int] | None] = [None] * n
    top = header
    for idx, lines, height in zip(members, wrapped, heights):
        if top > header:  # a hairline between blocks: which images belong to which label
            draw.line([(TEXT_PAD, top), (total_w - TEXT_PAD, top)], fill=(215, 215, 215))
        for j, line in enumerate(lines):
            draw.text((TEXT_PAD, top + TEXT_PAD + j * lh), line, fill=INK, font=font)
        for j, i in enumerate(idx):
            r, c = divmod(j, cols)
            y0, x0 = top + GAP + r * (ch + GAP), margin + GAP + c * (cw + GAP)
            canvas.paste(_cell(images[i], scale), (x0, y0))
            cells[i] = (y0, x0, ch, cw)
        top += height
    return np.asarray(canvas), GridLayout(tuple(cells), margin, header, scale)


def _cell(image: np.ndarray, scale: int):
    """One sample as an RGB PIL image, enlarged with Lanczos (not nearest: no blocky pixels)."""
    from PIL import Image

    im = Image.fromarray(to_uint8(image))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.LANCZOS)
    return im.convert("RGB")


def save_grid(images: np.ndarray, labels: Sequence, path: str | Path, *, per_row: int = 10,
              title: str = "", row_names: Sequence[str] | None = None,
              text: Mapping[str, str] | None = None, upscale: int | None = None, wrap_rows: bool = False) -> Path:
    """render_grid -> PNG at `path` (atomic), with the title, the row names and `text` in
    its metadata. Greyscale and RGB samples alike; pixel values in [-1, 1]."""
    from PIL import Image, PngImagePlugin

    canvas, _ = render_grid(images, labels, per_row=per_row, title=title, row_names=row_names, upscale=upscale,
                            wrap_rows=wrap_rows)
    groups = list(dict.fromkeys(np.asarray(labels).tolist()))
    names = [str(row_names[i]) if row_names is not None else str(k) for i, k in enumerate(groups)]
    info = PngImagePlugin.PngInfo()
    for k, v in {"title": title, "rows": "\n".join(names), **(text or {})}.items():
        info.add_itxt(k, str(v))  # iTXt: UTF-8 prompts
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG", pnginfo=info)
    return path
