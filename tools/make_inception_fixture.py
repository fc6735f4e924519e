"""Write tests/fixtures/inception_fid.{npz,json}: pytorch-fid's FID Inception on seeded weights.

Run by hand (NOT by `make test`) in the reference venv (see tools/make_vae_fixture.py) with
`pip install --no-deps pytorch-fid torchvision==0.28.*`. PyPI's torchvision wheel is built
against CUDA torch: its compiled ops cannot load next to the CPU torch wheel, and importing
torchvision fails while registering their meta kernels. The Inception model code is pure
Python and needs none of those ops, so this script stubs `torchvision._meta_registrations`
before the import. The real FID weights are not downloadable here: module construction's
`load_state_dict` is skipped and every tensor is drawn from a seeded NumPy recipe
(`recipe` below, repeated in tests/eval/test_fid.py), so the fixture stores no weights.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
import pytorch_fid.inception as pfi  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def recipe(keys_shapes: list[tuple[str, tuple[int, ...]]], seed: int = 0) -> dict[str, np.ndarray]:
    """He-normal convs, BatchNorm near identity: activations stay O(1) through 94 layers."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in sorted(keys_shapes):
        if key.endswith("conv.weight"):
            out[key] = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif key.endswith(("bn.weight", "running_var")):
            out[key] = rng.uniform(0.8, 1.2, shape)
        else:  # bn.bias, running_mean
            out[key] = 0.1 * rng.standard_normal(shape)
        out[key] = out[key].astype(np.float32)
    return out


def main() -> None:
    pfi.load_state_dict_from_url = lambda *a, **k: None
    load = torch.nn.Module.load_state_dict
    torch.nn.Module.load_state_dict = lambda self, sd, *a, **k: None  # no download: weights come next
    net = pfi.InceptionV3([3], resize_input=False, normalize_input=True).eval()
    torch.nn.Module.load_state_dict = load
    sd = net.state_dict()
    keys = [(k, tuple(v.shape)) for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    weights = recipe(keys)
    sd.update({k: torch.from_numpy(v) for k, v in weights.items()})
    net.load_state_dict(sd)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (2, 3, 75, 75)).astype(np.float32)  # 75: Inception's smallest input
    small = rng.uniform(0, 1, (1, 3, 20, 20)).astype(np.float32)
    with torch.no_grad():
        feats = net(torch.from_numpy(images))[0][:, :, 0, 0].numpy()
        resized = torch.nn.functional.interpolate(torch.from_numpy(small), size=(45, 45), mode="bilinear",
                                                  align_corners=False).numpy()
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "inception_fid.npz", images=images, features=feats, small=small, resized=resized)
    # block names differ (blocks.0.0.conv... in InceptionV3); map them to the fid_inception_v3 names
    meta = {"n_params": int(sum(v.numel() for v in net.parameters())), "torch": torch.__version__,
            "keys": [[k, list(s)] for k, s in keys]}
    (OUT / "inception_fid.json").write_text(json.dumps(meta) + "\n")
    print(f"features {feats.shape}, |f| mean {np.abs(feats).mean():.3f}; params {meta['n_params']:,}")


if __name__ == "__main__":
    main()
