"""The FID Inception-v3 (TensorFlow's 2015-12-05 graph, as pytorch-fid and jax-flow use it)
in Flax NNX, NHWC, returning the 2048-d pool features.

    net = load_inception("pt_inception-2015-12-05-6726825d.pth")   # the user's weights file
    feats = inception_features(net, images)    # (N, H, W, 3) in [-1, 1] -> (N, 2048)

Differences from torchvision's Inception-v3 that FID depends on: the branch average pools
of blocks A, C and E_1 do not count padding, and the last block (E_2) max-pools its pool
branch. Images are resized to 299x299 bilinearly (half-pixel centres, no antialiasing, as
torch's F.interpolate) before the network. Weights: the pytorch-fid state dict (.pth via
torch if installed, or the same names in .safetensors / .npz); BatchNorm eps 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.errors import UserError

BN_EPS = 1e-3


class BatchNorm(nnx.Module):
    """Inference BatchNorm with torch's names (weight, bias, running_mean, running_var)."""

    def __init__(self, c: int):
        self.weight = nnx.Param(jnp.ones((c,)))
        self.bias = nnx.Param(jnp.zeros((c,)))
        self.running_mean = nnx.BatchStat(jnp.zeros((c,)))  # buffers, not parameters (as in torch)
        self.running_var = nnx.BatchStat(jnp.ones((c,)))

    def __call__(self, x):
        return (x - self.running_mean[...]) * jax.lax.rsqrt(self.running_var[...] + BN_EPS) * self.weight[...] + self.bias[...]


class BasicConv(nnx.Module):
    """conv (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, k, *, stride: int = 1, pad=0, rngs: nnx.Rngs):
        kh, kw = (k, k) if isinstance(k, int) else k
        ph, pw = (pad, pad) if isinstance(pad, int) else pad
        self.conv = nnx.Conv(c_in, c_out, (kh, kw), strides=stride, padding=((ph, ph), (pw, pw)),
                             use_bias=False, rngs=rngs)
        self.bn = BatchNorm(c_out)

    def __call__(self, x):
        return jax.nn.relu(self.bn(self.conv(x)))


def max_pool(x, k: int = 3, stride: int = 2, pad: int = 0):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, stride, stride, 1),
                                 ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def avg_pool_exclude_pad(x):
    """3x3, stride 1, padding 1, dividing by the number of real (unpadded) pixels."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    count = jax.lax.reduce_window(jnp.ones(x.shape[1:3])[None, :, :, None], 0.0, jax.lax.add,
                                  (1, 3, 3, 1), (1, 1, 1, 1), pad)
    return total / count


class BlockA(nnx.Module):
    def __init__(self, c: int, pool_features: int, *, rngs):
        self.branch1x1 = BasicConv(c, 64, 1, rngs=rngs)
        self.branch5x5_1 = BasicConv(c, 48, 1, rngs=rngs)
        self.branch5x5_2 = BasicConv(48, 64, 5, pad=2, rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(c, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, pad=1, rngs=rngs)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, pad=1, rngs=rngs)
        self.branch_pool = BasicConv(c, pool_features, 1, rngs=rngs)

    def __call__(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return jnp.concatenate([self.branch1x1(x), b5, b3, self.branch_pool(avg_pool_exclude_pad(x))], -1)


class BlockB(nnx.Module):
    def __init__(self, c: int, *, rngs):
        self.branch3x3 = BasicConv(c, 384, 3, stride=2, rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(c, 64, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(64, 96, 3, pad=1, rngs=rngs)
        self.branch3x3dbl_3 = BasicConv(96, 96, 3, stride=2, rngs=rngs)

    def __call__(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return jnp.concatenate([self.branch3x3(x), b3, max_pool(x)], -1)


class BlockC(nnx.Module):
    def __init__(self, c: int, c7: int, *, rngs):
        self.branch1x1 = BasicConv(c, 192, 1, rngs=rngs)
        self.branch7x7_1 = BasicConv(c, c7, 1, rngs=rngs)
        self.branch7x7_2 = BasicConv(c7, c7, (1, 7), pad=(0, 3), rngs=rngs)
        self.branch7x7_3 = BasicConv(c7, 192, (7, 1), pad=(3, 0), rngs=rngs)
        self.branch7x7dbl_1 = BasicConv(c, c7, 1, rngs=rngs)
        self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1), pad=(3, 0), rngs=rngs)
        self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7), pad=(0, 3), rngs=rngs)
        self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1), pad=(3, 0), rngs=rngs)
        self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7), pad=(0, 3), rngs=rngs)
        self.branch_pool = BasicConv(c, 192, 1, rngs=rngs)

    def __call__(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return jnp.concatenate([self.branch1x1(x), b7, d, self.branch_pool(avg_pool_exclude_pad(x))], -1)


class BlockD(nnx.Module):
    def __init__(self, c: int, *, rngs):
        self.branch3x3_1 = BasicConv(c, 192, 1, rngs=rngs)
        self.branch3x3_2 = BasicConv(192, 320, 3, stride=2, rngs=rngs)
        self.branch7x7x3_1 = BasicConv(c, 192, 1, rngs=rngs)
        self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), pad=(0, 3), rngs=rngs)
        self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), pad=(3, 0), rngs=rngs)
        self.branch7x7x3_4 = BasicConv(192, 192, 3, stride=2, rngs=rngs)

    def __call__(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return jnp.concatenate([b3, b7, max_pool(x)], -1)


class BlockE(nnx.Module):
    def __init__(self, c: int, *, max_pool_branch: bool, rngs):
        self.max_pool_branch = max_pool_branch  # E_2 (the last block) max-pools
        self.branch1x1 = BasicConv(c, 320, 1, rngs=rngs)
        self.branch3x3_1 = BasicConv(c, 384, 1, rngs=rngs)
        self.branch3x3_2a = BasicConv(384, 384, (1, 3), pad=(0, 1), rngs=rngs)
        self.branch3x3_2b = BasicConv(384, 384, (3, 1), pad=(1, 0), rngs=rngs)
        self.branch3x3dbl_1 = BasicConv(c, 448, 1, rngs=rngs)
        self.branch3x3dbl_2 = BasicConv(448, 384, 3, pad=1, rngs=rngs)
        self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), pad=(0, 1), rngs=rngs)
        self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), pad=(1, 0), rngs=rngs)
        self.branch_pool = BasicConv(c, 192, 1, rngs=rngs)

    def __call__(self, x):
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = max_pool(x, 3, 1, 1) if self.max_pool_branch else avg_pool_exclude_pad(x)
        return jnp.concatenate([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                                self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], -1)


class FIDInception(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.Conv2d_1a_3x3 = BasicConv(3, 32, 3, stride=2, rngs=rngs)
        self.Conv2d_2a_3x3 = BasicConv(32, 32, 3, rngs=rngs)
        self.Conv2d_2b_3x3 = BasicConv(32, 64, 3, pad=1, rngs=rngs)
        self.Conv2d_3b_1x1 = BasicConv(64, 80, 1, rngs=rngs)
        self.Conv2d_4a_3x3 = BasicConv(80, 192, 3, rngs=rngs)
        self.Mixed_5b = BlockA(192, 32, rngs=rngs)
        self.Mixed_5c = BlockA(256, 64, rngs=rngs)
        self.Mixed_5d = BlockA(288, 64, rngs=rngs)
        self.Mixed_6a = BlockB(288, rngs=rngs)
        self.Mixed_6b = BlockC(768, 128, rngs=rngs)
        self.Mixed_6c = BlockC(768, 160, rngs=rngs)
        self.Mixed_6d = BlockC(768, 160, rngs=rngs)
        self.Mixed_6e = BlockC(768, 192, rngs=rngs)
        self.Mixed_7a = BlockD(768, rngs=rngs)
        self.Mixed_7b = BlockE(1280, max_pool_branch=False, rngs=rngs)
        self.Mixed_7c = BlockE(2048, max_pool_branch=True, rngs=rngs)

    def __call__(self, x_bhwc: jax.Array, *, resize: bool = True) -> jax.Array:
        """Images in [-1, 1] -> (B, 2048) pool features."""
        if resize:
            b, _, _, c = x_bhwc.shape
            x_bhwc = jax.image.resize(x_bhwc, (b, 299, 299, c), "bilinear", antialias=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x_bhwc)))
        x = max_pool(x)
        x = max_pool(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(axis=(1, 2))  # (B, 2048)


def torch_key(path: tuple) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts[:-1] + ["weight" if parts[-1] == "kernel" else parts[-1]])


def load_state_dict(net: FIDInception, tensors: dict[str, np.ndarray], where: str) -> FIDInception:
    """pytorch-fid names; fc.* and num_batches_tracked are ignored; anything else must match."""
    from ouro.vae.weights import assign

    tensors = {k: v for k, v in tensors.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    flat, seen = {}, set()
    for path, var in nnx.to_flat_state(nnx.state(net, nnx.Variable)):
        key = torch_key(path)
        if key not in tensors:
            raise UserError(f"{where}: missing key {key!r} (expected the pytorch-fid FID Inception state dict)")
        x = np.asarray(tensors[key], np.float32)
        if x.ndim == 4:
            x = x.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
        if x.shape != tuple(var.shape):
            raise UserError(f"{where}: key {key!r} has shape {np.shape(tensors[key])}, expected a tensor "
                            f"that maps to {tuple(var.shape)}")
        flat[path], _ = x, seen.add(key)
    extra = sorted(set(tensors) - seen)
    if extra:
        raise UserError(f"{where}: unexpected key {extra[0]!r}")
    assign(net, flat, nnx.Variable)
    return net


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: Inception weights not found (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                        "or the same state dict as .safetensors / .npz)")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    try:
        import torch
    except ImportError:
        raise UserError(f"{path}: reading a .pth needs torch (pip install 'ouro[torch]'), "
                        "or convert it to .safetensors") from None
    sd = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    return {k: v.float().numpy() for k, v in sd.items()}


def load_inception(path: str | Path) -> FIDInception:
    net = nnx.eval_shape(lambda: FIDInception(rngs=nnx.Rngs(0)))
    return load_state_dict(net, read_weights(path), str(path))
