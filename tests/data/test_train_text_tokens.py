"""End to end with per-token text and the real Gemma-3 encoder: captioned images ->
`ouro data from-images --text-tokens T` -> `ouro data check` -> a tiny MMDiT with
model.text_input=tokens trains through train(), is interrupted and resumes -> `ouro sample
--prompt` encodes the prompt as the captions were, and CFG's null condition is the empty text."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.cli import main as ouro
from ouro.config import override
from ouro.data import ShardedSource
from ouro.data.shapes import make_shapes
from ouro.model import flops_per_image
from ouro.train import preset_config, train
from ouro.train.sample import encode_prompts, load_for_sampling

T = 12
TOKENS_MMDIT = ["model=mmdit-tiny", "model.text_input=tokens", "model.in_channels=3", "model.dim=32",
                "model.depth=1", "model.heads=2", "model.mlp_dim=64", "tread_rate=0", "data.channels=3",
                "steps=4", "ckpt_every=2"]


def test_per_token_text_convert_train_resume_sample(tmp_path, capsys):
    from PIL import Image

    shapes = make_shapes(8, seed=0, image_size=16)
    src = tmp_path / "imgs"
    src.mkdir()
    for i, (im, caption) in enumerate(zip(shapes.images, shapes.captions)):
        Image.fromarray(np.round((im + 1) * 127.5).astype(np.uint8)).save(src / f"{i}.png")
        (src / f"{i}.txt").write_text(caption)
    ds = tmp_path / "ds"
    assert ouro(["data", "from-images", str(src), "--out", str(ds), "--size", "8", "--text-tokens", str(T),
                 "--shard-size", "4", "--no-progress"]) == 0
    assert ouro(["data", "check", str(ds), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["fields"]["ctx_tokens"] == {"dtype": "float16", "shape": [T, 640]}
    assert report["text_tokens"]["encoder"] == "gemma3-270m" and report["text_tokens"]["max_tokens"] == T

    cfg = override(preset_config("latents-smoke"), [f"data.path={ds}", f"out_dir={tmp_path / 'run'}", *TOKENS_MMDIT])
    part = train(cfg, stop_after=2)
    assert part["global_step"] == 2 and not part["finished"]
    done = train(cfg)
    assert done["resumed_from"] == 2 and done["finished"] and np.isfinite(done["final_loss"])
    # FLOPs count the T text tokens the model attends over, not one pooled token
    assert done["train_flops_per_image"] == 3 * flops_per_image(cfg.model, 8, 8, ctx_len=T)

    s = load_for_sampling(tmp_path / "run")
    assert s.text_tokens["max_tokens"] == T
    stored = ShardedSource(str(ds), fields=("ctx_tokens", "ctx_mask")).read(np.arange(4))
    # prompts encoded as the captions were (4 of them: the converter's batch shape, compiled once)
    tokens, mask = encode_prompts(s, shapes.captions[:4])
    np.testing.assert_array_equal(mask, stored["ctx_mask"])
    np.testing.assert_allclose(tokens, stored["ctx_tokens"].astype(np.float32), rtol=2e-3, atol=2e-2)

    # the null condition (CFG dropout in training, the unconditional branch in sampling) is the
    # empty text: with drop=True the text, however padded, no longer changes the prediction.
    # One call on 4 samples: texts (a, b, a, b), the first two dropped.
    model = nnx.merge(s.graphdef, s.params, s.rest)
    x = jnp.tile(jax.random.normal(jax.random.key(0), (1, 8, 8, 3)), (4, 1, 1, 1))
    pick = np.array([0, 1, 0, 1])
    v = np.asarray(nnx.jit(lambda m, *a, **k: m(*a, **k))(
        model, x, jnp.full(4, 0.5), jnp.asarray(tokens[pick]), ctx_mask=jnp.asarray(mask[pick]),
        drop=jnp.array([True, True, False, False])))
    np.testing.assert_array_equal(v[0], v[1])
    assert not np.allclose(v[2], v[3])

    assert ouro(["sample", "--ckpt", str(tmp_path / "run")]) == 2  # no class table: prompts needed
    err = capsys.readouterr().err
    assert "has no class table: give prompts (ouro sample/sweep --prompt TEXT or --prompts FILE" in err
    assert err.count("\n") == 1
    out = tmp_path / "grid.png"
    prompts = [a for p in [*shapes.captions[:3], "a small green square"] for a in ("--prompt", p)]
    assert ouro(["sample", "--ckpt", str(tmp_path / "run"), *prompts, "--per-class", "1", "--steps", "2",
                 "--out", str(out)]) == 0
    assert out.exists() and len(list((tmp_path / "grid").glob("sample_0*.png"))) == 4
    manifest = json.loads((tmp_path / "grid" / "manifest.json").read_text())
    assert manifest["prompts"][3] == "a small green square" and manifest["images"][3]["prompt"] == "a small green square"

    # `ouro sweep` on a text run: shapes captions are scored by reading the pictures back,
    # other prompts get their grids and "no scorer applies" (same 4-sample batch: no new compile)
    listed = tmp_path / "prompts.txt"
    listed.write_text("\n".join(shapes.captions[:4]) + "\n")
    sweep = ["sweep", "--ckpt", str(tmp_path / "run"), "--steps", "2", "--cfg", "3", "--per-class", "1"]
    assert ouro(sweep) == 2 and "has no class table: give prompts" in capsys.readouterr().err
    assert ouro([*sweep, "--prompts", str(listed)]) == 0
    rows = json.loads((tmp_path / "run" / "sweep.json").read_text())["rows"]
    assert rows[0]["scorer"] == "shapes" and 0 <= rows[0]["all"] <= 1 and rows[0]["n_samples"] == 4
    assert ouro([*sweep, *prompts]) == 0
    assert "no scorer applies" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "sweep.json").read_text())["rows"][0]["scorer"] == "none"
    assert len(list((tmp_path / "run" / "sweep").glob("*/steps2_cfg3.png"))) == 2  # the first sweep's grid kept
