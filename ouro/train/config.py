"""Training configuration: frozen dataclasses, a preset table, validation before compiling.

    cfg = preset_config("digits")                       # the `make demo` run
    cfg = override(cfg, ["steps=500", "model.dim=64"])  # ouro.config.override: key=value

Every default carries a one-line reason. Each dataclass checks its fields' types and
ranges when constructed (@checked); `validate(cfg, n_devices)` adds the checks that
involve several fields or the device count. Both raise ConfigError naming the field,
before anything is built or compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ouro.config import ConfigError, checked
from ouro.flow.timesteps import FlowConfig


@checked(image_size=">0", channels=">0", ctx_dim=">0", groups=">=1", workers=">=0", prefetch=">=0",
         holdout=">=0")
@dataclasses.dataclass(frozen=True)
class DataConfig:
    kind: Literal["digits", "sharded"] = "digits"  # digits ship with scikit-learn: no download
    path: str = ""  # kind="sharded": dataset dir with index.json, local or gs://... (`ouro data` writes one)
    context: Literal["gemma", "random"] = "gemma"  # digits: Gemma-3 caption embeddings
    image_size: int = 16  # digits are upsampled 8 -> 16 so patch 2 gives 64 tokens
    channels: int = 1  # digits are grey; SDXL latents have 4
    ctx_dim: int = 640  # Gemma-3 270M hidden size
    autoencoder: str = ""  # AutoencoderKL dir the latents came from ("" = pixel space); sampling decodes with it
    space: Literal["pixels", "latents"] = "pixels"  # what x is (from index.json): latents are never written as PNGs raw
    holdout: int = 0  # sharded: the last N rows are not trained on; their captions are the sample prompts
    # aspect buckets "WxH,..." in data space (from a bucketed dataset's index.json: one compile each;
    # image_size is then the side of their square area budget); "" = every image image_size^2
    buckets: str = ""
    mode: Literal["auto", "preload", "stream"] = "auto"  # sharded: RAM preload if the host's share fits
    groups: int = 1  # sharded: row groups; hosts dividing it preload only their 1/P (ouro/data/pipeline.py)
    workers: int = 4  # sharded streaming: reader threads (I/O releases the GIL)
    prefetch: int = 4  # batches read ahead of the train step


@checked(fsdp=">=1")
@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = -1  # -1: every device not used by fsdp
    fsdp: int = 1  # >1 shards parameters + optimizer state (big models on pods)

    def __post_init__(self):
        if self.data != -1 and self.data < 1:
            raise ConfigError(f"data={self.data!r}: must be -1 (all devices) or >= 1", key="data")


@checked(steps=">0", cfg_scale=">=0", per_class=">0", prompts=">0")
@dataclasses.dataclass(frozen=True)
class SampleConfig:
    steps: int = 32  # HDM samples with 16-32 Euler steps
    method: Literal["euler", "heun"] = "euler"  # Euler is the reference sampler
    cfg_scale: float = 3.0  # HDM default guidance
    per_class: int = 10  # 10 x 10 labelled grid for the digits; samples per prompt on own data
    prompts: int = 8  # own data: rows of the grid = this many held-out captions (data.holdout)
    seed: int = 1234  # fixed noise: grids comparable across checkpoints


def _model_preset(text: str, key: str) -> Any:
    """`model=<preset>` on the command line: any registered family's preset (ouro models)."""
    from ouro.model.registry import all_presets

    table = all_presets()
    if text not in table:
        raise ConfigError(f"{key}={text!r}: unknown model preset; known: {', '.join(table)}")
    return table[text]


@checked(steps=">0", batch_size=">0", lr=">0", warmup_steps=">=0", min_lr_ratio="[0,1]",
         weight_decay=">=0", b1="[0,1)", b2="[0,1)", clip_norm=">0", ema_decay="[0,1)",
         cfg_dropout="[0,1)", tread_rate="[0,1)", log_every=">0", ckpt_every=">0", keep_ckpts=">0",
         keep_every_steps=">=0", microbatches=">0", stop_check_every=">0", sample_every=">=0",
         host_timeout_s=">0", lock_ttl_s=">=10", join_timeout_s=">=1")
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # any registered family's config (ouro/model/registry.py); `model=dit-debug` picks a preset
    model: Any = dataclasses.field(default=None, metadata={"parse": _model_preset})
    data: DataConfig = DataConfig()
    mesh: MeshConfig = MeshConfig()
    sample: SampleConfig = SampleConfig()
    name: str = "run"  # the run's name in logs, W&B and reports
    out_dir: str = "outputs/run"  # loss.csv, metrics.json, samples.png, config.json, checkpoints/
    ckpt_dir: str = ""  # "" = out_dir/checkpoints; any local path or gs://bucket/dir (pods)
    seed: int = 0  # parameters, data order, noise: one seed makes the run reproducible
    steps: int = 1000  # total optimizer steps
    batch_size: int = 128  # global batch, split over all devices
    lr: float = 0.5  # muP base lr: a hidden matrix of fan-in n gets lr / n (Ouroboros 0.5)
    mup: bool = True  # False: every parameter gets lr / model width
    warmup_steps: int = 100  # linear warm-up, then cosine decay
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 1e-4  # AdamW, decoupled; matrices only
    b1: float = 0.9  # Adam's usual first-moment decay
    b2: float = 0.99  # shorter second-moment memory: steadier with tiny batches
    clip_norm: float = 1.0  # global-norm clipping (HDM, Ouroboros)
    ema_decay: float = 0.999  # EMA of weights, used for sampling
    microbatches: int = 1  # gradient accumulation: the global batch runs in k slices per step
    cfg_dropout: float = 0.1  # P(condition -> the model's null condition): trains the unconditional branch
    tread_rate: float = 0.5  # TREAD: fraction of image tokens routed around the XUT core
    flow: FlowConfig = FlowConfig()  # t distribution, timestep shift, loss weighting (ouro/flow/timesteps.py)
    log_every: int = 50  # host sync + CSV row every N steps (not every step)
    ckpt_every: int = 500  # Orbax checkpoint every N steps (+ at the end)
    keep_ckpts: int = 3  # keep the last K step checkpoints (+ the permanent epoch-end ones below)
    keep_every_steps: int = 10_000  # epoch ends kept for good at most this often (Ouroboros: 10k-step epochs); 0: every epoch
    stop_check_every: int = 10  # hosts agree on a stop every N steps: a tiny all-gather + host sync; preemption leaves ~30 s
    host_timeout_s: float = 60.0  # a pod host silent this long is lost: the others stop with one line naming it (ouro/train/host_watch.py), below jax.distributed's own 100 s
    join_timeout_s: float = 300.0  # a pod's start: how long the hosts wait for each other in jax.distributed's start-up before one line names the wait and each exits 3 (ouro/sharding.py)
    lock_ttl_s: float = 120.0  # gs:// run lock: a holder with no heartbeat this long (a preempted VM) is taken over; it beats every ttl/3 (ouro/train/gcs_lock.py)
    wandb: bool = False  # Weights & Biases logging
    wandb_project: str = "ouro"  # W&B project the runs are grouped under
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"  # offline: no network; WANDB_MODE wins
    tensorboard: bool = True  # event files in out_dir/tensorboard (`tensorboard --logdir outputs/`)
    progress: bool = True  # tqdm bar
    eval_samples: bool = True  # sample a grid from the EMA weights at the end (-> samples.png); scored on digits
    sample_every: int = 0  # also every N steps (train_samples/step_N_grid.png, TensorBoard/W&B); 0 = only at the end
    init_from: str = ""  # a run directory: start from its EMA weights (fine-tuning); fresh optimizer, step 0


def _digits_model(**overrides: Any) -> Any:
    from ouro.model import preset

    # patch 4 -> 16 tokens of 16 pixels: ~4x cheaper than patch 2 and enough for 16x16
    # digits (100% conditional accuracy at CFG 3 after 1,200 steps in our runs)
    base = dict(in_channels=1, patch_size=4, dim=128, mlp_dim=256, head_dim=32, depth=2,
                enc_blocks=1, dec_blocks=1, pre_blocks=1, post_blocks=1, ctx_dim=640)
    base.update(overrides)
    return preset("xut-tiny", **base)


def _digits(**kw: Any) -> TrainConfig:
    return TrainConfig(model=_digits_model(), name="digits", out_dir="outputs/digits",
                       steps=800, batch_size=128, warmup_steps=50, log_every=50,
                       ckpt_every=200, sample=SampleConfig(per_class=20), **kw)


def _digits_smoke(**kw: Any) -> TrainConfig:
    return TrainConfig(model=_digits_model(dim=32, mlp_dim=64, head_dim=16, depth=1,
                                           pre_blocks=0, post_blocks=0, patch_size=4),
                       name="digits-smoke", out_dir="outputs/digits-smoke", steps=20,
                       batch_size=32, warmup_steps=5, log_every=5, ckpt_every=10,
                       progress=False, sample=SampleConfig(steps=2, per_class=2),
                       mesh=MeshConfig(data=1), **kw)  # one device: compiles fastest


def _latents(model_name: str, image: int, *, remat: str = "none", microbatches: int = 1) -> TrainConfig:
    # The Ouroboros run: SDXL-VAE latents (32x32x4 for 256 px), global batch 1024, bf16.
    from ouro.model import preset

    # bf16 compute is the model config's field (the one place that decides it). remat none:
    # the deviceless v5e:4x8 compile (xut-small, batch 1024, TREAD 0.5; e4a654a) fits it in
    # 3.54 GiB state + 7.19 GiB temporaries = 10.73 GiB (32% headroom); block remat (6.49 GiB)
    # would pay ~1.33x executed FLOPs for memory the chip does not need. Other topologies and
    # batches: `ouro plan --fit` picks the cheapest setting (README, "Pod scale").
    model = preset(model_name, in_channels=4, patch_size=2, dtype="bfloat16", remat=remat)
    return TrainConfig(model=model,
                       data=DataConfig(kind="sharded", context="gemma", image_size=image, channels=4,
                                       ctx_dim=model.ctx_dim,
                                       groups=8),  # 8 hosts of a v5e-32: each preloads 1/8
                       name=model_name, out_dir=f"outputs/{model_name}", steps=200_000,
                       batch_size=1024, microbatches=microbatches, warmup_steps=1000, log_every=100,
                       ckpt_every=1000, keep_ckpts=3, wandb=True, wandb_project="xut-small-256",
                       eval_samples=False)


# The digits presets of the other model families: same data, schedule and sampler as
# "digits"; widths near the XUT's (D 128, patch 4); no TREAD (these families do not route).
_FAMILY_DIGITS = {
    "dit": dict(preset="dit-debug", dim=128, depth=6, heads=4),
    "mmdit": dict(preset="mmdit-tiny", dim=128, depth=4, heads=4, mlp_dim=352),
    "icmmdit": dict(preset="icmmdit-tiny", dim=128, depth=4, heads=4, mlp_dim=352),
}
_FAMILY_SMOKE = {
    "dit": dict(preset="dit-debug", dim=32, depth=1, heads=2),
    "mmdit": dict(preset="mmdit-tiny", dim=32, depth=1, heads=2, mlp_dim=64),
    "icmmdit": dict(preset="icmmdit-tiny", dim=32, depth=1, heads=2, mlp_dim=64),
}


def _family_model(spec: dict[str, Any]) -> Any:
    from ouro.model.registry import preset

    spec = dict(spec)
    return preset(spec.pop("preset"), in_channels=1, patch_size=4, ctx_dim=640, **spec)


def _family_digits(fam: str, smoke: bool) -> TrainConfig:
    base = _digits_smoke() if smoke else _digits()
    model = _family_model((_FAMILY_SMOKE if smoke else _FAMILY_DIGITS)[fam])
    return dataclasses.replace(base, model=model, tread_rate=0.0, name=f"{base.name}-{fam}",
                               out_dir=f"{base.out_dir}-{fam}")
def _latents_smoke(**kw: Any) -> TrainConfig:
    # the xut-small-256 path (sharded float16 NHWC latents + Gemma embeddings) at CPU size
    return TrainConfig(model=_digits_model(in_channels=4, patch_size=2, dim=32, mlp_dim=64, head_dim=16,
                                           depth=1, pre_blocks=0, post_blocks=0),
                       data=DataConfig(kind="sharded", image_size=8, channels=4, groups=2),
                       name="latents-smoke", out_dir="outputs/latents-smoke", steps=8, batch_size=8,
                       warmup_steps=2, log_every=1, ckpt_every=4, progress=False, eval_samples=False,
                       mesh=MeshConfig(data=1), **kw)


def _own_data(**kw: Any) -> TrainConfig:
    # `ouro train data.path=DIR`: a laptop-sized XUT (the digits model) for a dataset of your
    # own; image size, channels and text width come from DIR's index.json (ouro.train.fit_data),
    # and the patch makes the image 8x8 = 64 tokens. 2.0 M parameters; at 32 px a step took
    # ~0.6 CPU-seconds on our 2-core machine (1,000 steps: minutes, not hours).
    return TrainConfig(model=_digits_model(in_channels=3), data=DataConfig(kind="sharded", image_size=32,
                                                                         channels=3, holdout=8),
                       name="own-data", out_dir="outputs/own-data", steps=1000, batch_size=64,
                       warmup_steps=50, log_every=50, ckpt_every=250, sample_every=250,
                       sample=SampleConfig(per_class=4, prompts=8),
                       mesh=MeshConfig(data=1), **kw)  # one device (a laptop's); mesh.data=-1 for all


PRESETS = {
    "digits": _digits,  # `make demo`: a small XUT on 16x16 digits, a few minutes on 2 cores
    "digits-smoke": _digits_smoke,  # seconds: tests and notebook smoke runs
    "xut-small-256": lambda: _latents("xut-small", 32),  # Ouroboros' TPU v5e-32 run
    # the same digits runs with the other model families (DiT, MMDiT, InContextMMDiT)
    **{f"digits-{fam}": (lambda fam=fam: _family_digits(fam, False)) for fam in _FAMILY_DIGITS},
    **{f"digits-smoke-{fam}": (lambda fam=fam: _family_digits(fam, True)) for fam in _FAMILY_SMOKE},
    "latents-smoke": _latents_smoke,  # seconds: sharded data.path=DIR of 8x8x4 latents (tests)
    "own-data": _own_data,  # `ouro train data.path=DIR` (no --preset): your dataset on a laptop
    "xut-base-256": lambda: _latents("xut-base", 32),  # the next size up, same recipe
}


def preset_config(preset: str, /, **overrides: Any) -> TrainConfig:
    """A preset with TrainConfig fields replaced, e.g. preset_config("digits", steps=300)."""
    if preset not in PRESETS:
        from ouro.config import suggest

        hint = suggest(preset, PRESETS)
        raise ConfigError(f"unknown training preset {preset!r}; "
                          + (hint if hint.startswith("did") else f"known: {', '.join(PRESETS)}"))
    cfg = PRESETS[preset]()
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _check(ok: bool, field: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {msg}")


def validate(cfg: TrainConfig, n_devices: int | None = None) -> None:
    """Raise ConfigError naming the first bad field. Cheap: runs before any compile.

    Single-field types and ranges were checked when the dataclasses were built; these are
    the checks across fields (which `override` may set one at a time) and devices."""
    _check(cfg.warmup_steps <= cfg.steps, "warmup_steps",
           f"{cfg.warmup_steps} must be in [0, steps={cfg.steps}]")
    _check(cfg.microbatches >= 1 and cfg.batch_size % cfg.microbatches == 0, "microbatches",
           f"{cfg.microbatches} must be >= 1 and divide batch_size={cfg.batch_size}")
    _check(cfg.data.kind != "sharded" or bool(cfg.data.path), "data.path",
           "required when data.kind='sharded'")
    _check(cfg.data.kind == "sharded" or not cfg.data.path, "data.path",
           f"{cfg.data.path!r} is only read with data.kind=sharded (data.kind={cfg.data.kind!r} would train "
           f"on the embedded digits); drop data.kind or data.path")
    _check(cfg.data.groups >= 1 and cfg.batch_size % cfg.data.groups == 0, "data.groups",
           f"{cfg.data.groups} must be >= 1 and divide batch_size={cfg.batch_size}")
    _check(cfg.data.workers >= 0 and cfg.data.prefetch >= 0, "data.workers",
           "data.workers and data.prefetch must be >= 0")
    if n_devices is not None:
        _check(cfg.mesh.fsdp >= 1 and n_devices % cfg.mesh.fsdp == 0, "mesh.fsdp",
               f"{cfg.mesh.fsdp} must divide the {n_devices} devices")
        used = n_devices if cfg.mesh.data == -1 else cfg.mesh.data * cfg.mesh.fsdp
        _check(cfg.mesh.data == -1 or 1 <= used <= n_devices, "mesh.data",
               f"{cfg.mesh.data} x mesh.fsdp={cfg.mesh.fsdp} does not fit the {n_devices} devices")
        _check(cfg.batch_size % used == 0, "batch_size",
               f"{cfg.batch_size} is not divisible by the {used} devices of the mesh")
        _check((cfg.batch_size // cfg.microbatches) % used == 0, "microbatches",
               f"a microbatch of {cfg.batch_size // max(cfg.microbatches, 1)} is not divisible by the "
               f"{used} devices of the mesh")
    m = cfg.model
    if m is None:
        raise ConfigError("model: no model config")
    from ouro.model.registry import FAMILIES

    fam = next((f for f in FAMILIES.values() if type(m) is f.config), None)
    _check(fam is None or fam.routing or cfg.tread_rate == 0, "tread_rate",
           f"{cfg.tread_rate} but model family {fam and fam.name!r} has no token routing; set tread_rate=0")
    get = lambda k, d=None: getattr(m, k, d)  # noqa: E731 - model configs may lack fields
    dim, head_dim, patch = get("dim"), get("head_dim"), get("patch_size")
    if dim is not None and head_dim:
        _check(dim % head_dim == 0, "model.head_dim", f"{head_dim} does not divide model.dim={dim}")
    if dim is not None:
        _check(dim > 0, "model.dim", "must be positive")
    if patch:
        _check(cfg.data.image_size % patch == 0, "model.patch_size",
               f"{patch} does not divide data.image_size={cfg.data.image_size}")
    if cfg.data.buckets:
        from ouro.data.buckets import parse_sizes
        from ouro.errors import UserError

        try:
            sizes = parse_sizes(cfg.data.buckets, "data.buckets=")
        except UserError as e:
            raise ConfigError(str(e), key="data.buckets") from None
        for h, w in sizes:
            _check(not patch or (h % patch == 0 and w % patch == 0), "model.patch_size",
                   f"{patch} does not divide aspect bucket {h}x{w} (data.buckets)")
    if get("in_channels") is not None:
        _check(get("in_channels") == cfg.data.channels, "model.in_channels",
               f"{get('in_channels')} != data.channels={cfg.data.channels}")
    if get("ctx_dim") is not None:
        _check(get("ctx_dim") == cfg.data.ctx_dim, "model.ctx_dim",
               f"{get('ctx_dim')} != data.ctx_dim={cfg.data.ctx_dim}")


def _build(cls: type, d: dict) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:  # model classes need not be @checked: name the keys here too
        raise ConfigError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def from_dict(d: dict, model_cls: type | None = None, *, family: str | None = None) -> TrainConfig:
    """Inverse of ouro.config.to_dict (config.json -> TrainConfig). `family` names the model
    family (config.json's "model_family"); None: the first registered family whose config
    has exactly these fields (runs written before families existed are XUT)."""
    d = dict(d)
    # runs before the model config decided the compute dtype carried an unread train-level
    # "dtype" (their model computed in model.dtype): dropping it restores what really ran
    d.pop("dtype", None)
    if "t_schedule" in d:  # runs before FlowConfig named their t distribution at the top level
        d.setdefault("flow", {"t_dist": d["t_schedule"]})
        d.pop("t_schedule")
    nested = {"data": DataConfig, "mesh": MeshConfig, "sample": SampleConfig, "flow": FlowConfig}
    for key, cls in nested.items():
        if key in d:
            d[key] = _build(cls, d[key])
    if d.get("model") is not None:
        if model_cls is not None:
            d["model"] = _build(model_cls, d["model"])
        else:
            from ouro.model.registry import config_from_dict, infer_family

            d["model"] = config_from_dict(family or infer_family(d["model"]), d["model"])
    return _build(TrainConfig, d)
