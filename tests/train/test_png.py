"""Sample PNGs: one file per image + a grid, prompts in the metadata, RGB kept."""

import numpy as np
from PIL import Image

from ouro.train.png import grid, save_images


def test_save_images_writes_each_image_with_its_prompt(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    prompts = ["a red circle above a blue square", "ein grünes Dreieck", "c"]
    paths = save_images(images, tmp_path, prompts, text={"cfg_scale": "3"}, per_row=2, upscale=1)
    assert [p.name for p in paths] == ["sample_0000.png", "sample_0001.png", "sample_0002.png", "sample_grid.png"]
    first = Image.open(paths[0])
    assert first.mode == "RGB" and first.text["prompt"] == prompts[0] and first.text["cfg_scale"] == "3"
    assert Image.open(paths[1]).text["prompt"] == "ein grünes Dreieck"  # UTF-8 survives
    np.testing.assert_allclose(np.asarray(first) / 127.5 - 1, images[0], atol=1 / 127.5)  # not drawn over
    g = Image.open(paths[-1])
    assert g.size == (8 * 2 + 1, 8 * 2 + 1) and "1: ein grünes Dreieck" in g.text["prompts"]
    assert grid(images[:, :, :, :1], 3).shape == (8, 26, 1)
    assert Image.open(save_images(images[:1, :, :, :1], tmp_path / "g", ["x"], upscale=2)[0]).size == (16, 16)
