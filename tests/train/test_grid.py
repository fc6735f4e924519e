"""The labelled sample grid: every sample drawn whole in its cell (Lanczos-enlarged), labels
and title only in the margin column and the title band, long prompts wrapped, metadata kept."""

import numpy as np
import pytest
from PIL import Image

from ouro.train.grid import _font, render_grid, save_grid, wrap
from ouro.train.png import to_uint8

LONG = ("a large red circle above a small blue square, drawn on a black background with a "
        "supercalifragilisticexpialidociouslylongwordthatcannotfitanywhere in it")


def _images(n, size, channels, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


@pytest.mark.parametrize("size, channels, scale", [(16, 1, 4), (32, 3, 2), (64, 3, 1)])
def test_cells_hold_the_samples_and_text_stays_in_the_margin(size, channels, scale):
    images = _images(7, size, channels)
    labels = np.array([2, 2, 2, 5, 5, 9, 9])  # blocks of 3, 2 and 2 samples
    canvas, lay = render_grid(images, labels, per_row=2, title="run · step 4 · CFG 3",
                              row_names=["two", LONG, "nine"], wrap_rows=True)
    assert lay.scale == scale and canvas.dtype == np.uint8 and canvas.shape[2] == 3
    boxes = []
    for i, (top, left, h, w) in enumerate(lay.cells):
        assert (h, w) == (size * scale, size * scale) and left >= lay.margin and top >= lay.header
        want = Image.fromarray(to_uint8(images[i]))
        want = np.asarray((want.resize((w, h), Image.LANCZOS) if scale > 1 else want).convert("RGB"))
        np.testing.assert_array_equal(canvas[top:top + h, left:left + w], want)  # whole, nothing drawn over it
        boxes.append((top, left, h, w))
    for a in range(len(boxes)):  # no two cells overlap
        for b in range(a):
            ta, la, h, w = boxes[a]
            tb, lb, _, _ = boxes[b]
            assert abs(ta - tb) >= h or abs(la - lb) >= w
    # a block of 3 with per_row=2 wraps onto a second line, beside the same label
    assert lay.cells[2][0] > lay.cells[0][0] and lay.cells[2][1] == lay.cells[0][1]
    ink = canvas.min(-1) < 128
    outside = ink.copy()
    for top, left, h, w in boxes:
        outside[top:top + h, left:left + w] = False
    ys, xs = np.nonzero(outside)
    assert ((xs < lay.margin) | (ys < lay.header)).all()  # text only in the margin or the title band
    assert ink[:lay.header].any()  # the title is drawn
    for k, first in ((0, 0), (1, 3), (2, 5)):  # each block's label sits beside it, in the margin
        top = lay.cells[first][0]
        assert ink[top:top + 14, :lay.margin].any(), k
    # the long prompt wraps inside a column of bounded width (it does not stretch the grid)
    assert lay.margin <= max(160, 3 * size * scale) + 13
    # without wrap_rows a block shows its first per_row samples (the training grid's 10 of 20)
    _, first = render_grid(images, labels, per_row=2)
    assert first.cells[2] is None and first.cells[:2] != (None, None) and first.cells[3] is not None


def test_wrap_splits_long_words_and_cuts_with_an_ellipsis():
    font = _font(12)
    lines = wrap(LONG, font, 120)
    assert all(font.getlength(line) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "") .startswith("alargeredcircle")
    cut = wrap(" ".join(["word"] * 200), font, 60, max_lines=3)
    assert len(cut) == 3 and cut[-1].endswith("…")
    assert wrap("", font, 60) == [""]


def test_save_grid_writes_rgb_and_greyscale_with_labels_in_the_metadata(tmp_path):
    labels = np.array([0, 0, 1, 1])
    path = save_grid(_images(4, 32, 3), labels, tmp_path / "g.png", per_row=2, title="t",
                     row_names=["a red circle", "ein grünes Quadrat"], text={"cfg_scale": "3"})
    im = Image.open(path)
    assert im.mode == "RGB" and im.text["rows"] == "a red circle\nein grünes Quadrat"
    assert im.text["title"] == "t" and im.text["cfg_scale"] == "3"
    grey = Image.open(save_grid(_images(4, 16, 1), labels, tmp_path / "h.png", per_row=10))
    assert grey.text["rows"] == "0\n1" and grey.width < 400  # two columns, not ten empty ones
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temp file left
