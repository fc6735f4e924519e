"""OuroXUTPipeline: sample an exported ouro XUT model with diffusers (no ouro, no JAX).

    pipe = DiffusionPipeline.from_pretrained("exported/", trust_remote_code=True)
    images = pipe(class_label=[3, 7], num_inference_steps=32, guidance_scale=3.0,
                  generator=torch.Generator().manual_seed(0)).images          # PIL images
    images = pipe(prompt_embeds=vectors, ...)   # pooled text embeddings, as ouro.text.embed gives
    images = pipe(prompt="a red circle", negative_prompt="a blue square", guidance_scale=4.0,
                  guidance_interval=(0.0, 0.7), guidance_rescale=0.5)
    images = pipe(prompt="...", image=start, strength=0.6)          # image-to-image (SDEdit)

ouro's sampler, step for step (ouro/flow/samplers.py): rectified flow with t = 1 noise and
v = eps - x0; Euler on ouro's grid (ouro.flow.timesteps.time_grid: uniform in the unshifted
time, passed to the scheduler as its sigmas, which the scheduler shifts by its `shift`: the
run's timestep shift, written by the export; its own default grid stops at 1/num_train_timesteps,
not 0). Guidance, the definitions of ouro/flow/guidance.py line for line:

    v = v_weak + s (v_cond - v_weak)                    both passes in ONE batched call
    v <- phi v std(v_cond) / std(v) + (1 - phi) v       guidance_rescale phi (std per sample)
    v = v_cond outside lo <= t <= hi                    guidance_interval (the weak pass is skipped)

v_weak reads the family's null condition (an all-zero context for XUT), or the negative
prompt's. Image-to-image: the image (pixels, encoded by the VAE; or `image_latents`) is
noised to t0 = strength, x = (1 - t0) image + t0 noise, then integrated with
ceil(steps * strength) steps from t0. Latent runs decode with the exported AutoencoderKL
(latents / scaling_factor + shift_factor); pixel runs return the model's output. Images are
in [-1, 1] before conversion to PIL.

This file imports only torch, numpy, PIL and diffusers: `ouro export --to diffusers` copies it
into the exported folder (pipeline.py).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

FULL = (0.0, 1.0)


def check_guidance(scale: float, interval, rescale: float, strength: float) -> None:
    """The JAX sampler's checks (ouro.flow.guidance.check_guidance, ouro.flow.samplers.sample)."""
    lo, hi = interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval={tuple(interval)}: need 0 <= lo <= hi <= 1 (t = 1 is noise)")
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"guidance_rescale={rescale}: must be in [0, 1]")
    if scale < 0:
        raise ValueError(f"guidance_scale={scale}: must be >= 0")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength={strength}: must be in (0, 1] (1 = start from pure noise)")


def rescale_to(v: torch.Tensor, v_ref: torch.Tensor, phi: float) -> torch.Tensor:
    """Lin et al.'s rescale: blend v with v scaled to v_ref's per-sample (population) std."""
    if phi == 0.0:
        return v
    dims = tuple(range(1, v.ndim))
    ratio = v_ref.std(dim=dims, keepdim=True, correction=0) / v.std(dim=dims, keepdim=True, correction=0).clamp_min(1e-12)
    return phi * (v * ratio) + (1.0 - phi) * v


def combine(v_cond: torch.Tensor, v_weak: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """The guided velocity inside the guidance interval (ouro.flow.guidance.combine)."""
    return rescale_to(v_weak + scale * (v_cond - v_weak), v_cond, rescale)


def img2img_steps(steps: int, strength: float) -> int:
    """Steps over [0, strength]: the full schedule's step density (ouro.flow.samplers.img2img_steps)."""
    return max(1, int(np.ceil(steps * strength - 1e-9)))


def unshifted_grid(steps: int, shift: float, t_start: float = 1.0) -> np.ndarray:
    """(steps,) unshifted times tau_i = tau_0 (1 - i/steps), tau_0 = unshift(t_start), without the
    final 0 (the scheduler appends it and applies the shift: ouro.flow.timesteps.time_grid)."""
    tau0 = t_start / (shift - (shift - 1.0) * t_start)
    return tau0 * (1.0 - np.arange(steps, dtype=np.float64) / steps)


class OuroXUTPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["vae", "text_encoder", "tokenizer"]

    def __init__(self, transformer, scheduler, vae=None, text_encoder=None, tokenizer=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer)

    @torch.no_grad()
    def encode_prompt(self, prompt: list[str], max_tokens: int = 512) -> torch.Tensor:
        """Pooled Gemma-3 embeddings exactly as ouro.text.embed computes them: BOS + the text's
        tokens (at most max_tokens in all), mean over the last hidden states of the text's own
        tokens (BOS excluded), L2-normalised -> (B, 640)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("this pipeline has no text encoder: pass class_label or prompt_embeds")
        bos = self.tokenizer.bos_token_id
        vectors = []
        for text in prompt:  # one at a time: no padding, so no mask can differ from ouro's
            ids = self.tokenizer(text, add_special_tokens=False).input_ids[: max_tokens - 1]
            if not ids:
                raise ValueError(f"prompt {text!r} has no tokens")
            hidden = self.text_encoder(input_ids=torch.tensor([[bos, *ids]], device=self.device)).last_hidden_state
            pooled = hidden[:, 1:].float().mean(dim=1)  # (1, 640)
            vectors.append(pooled / pooled.norm(dim=-1, keepdim=True))
        return torch.cat(vectors)

    def _context(self, prompt, class_label, prompt_embeds) -> torch.Tensor:
        given = [a is not None for a in (prompt, class_label, prompt_embeds)]
        if sum(given) != 1:
            raise ValueError("give exactly one of prompt, class_label or prompt_embeds")
        if class_label is not None:
            table = getattr(self.transformer, "class_embeddings", None)
            if table is None:
                raise ValueError("this model has no class table: pass prompt or prompt_embeds")
            labels = torch.as_tensor([class_label] if np.isscalar(class_label) else list(class_label))
            if int(labels.min()) < 0 or int(labels.max()) >= table.shape[0]:
                raise ValueError(f"class_label must be in [0, {table.shape[0]}), got {labels.tolist()}")
            return table[labels.to(table.device)][:, None, :].float()  # (B, 1, E)
        if prompt is not None:
            emb = self.encode_prompt([prompt] if isinstance(prompt, str) else list(prompt))
        else:
            emb = torch.as_tensor(np.asarray(prompt_embeds), dtype=torch.float32)
        return (emb[:, None, :] if emb.ndim == 2 else emb).to(self.device)  # (B, T, E)

    def _negative(self, ctx: torch.Tensor, negative_prompt, negative_class_label, negative_prompt_embeds):
        """The weak branch's condition (B, T, E): the negative one, repeated to ctx's batch, or None."""
        given = [a is not None for a in (negative_prompt, negative_class_label, negative_prompt_embeds)]
        if not any(given):
            return None
        neg = self._context(negative_prompt, negative_class_label, negative_prompt_embeds)
        if neg.shape[0] == 1:
            neg = neg.expand(ctx.shape[0], -1, -1)
        if neg.shape != ctx.shape:
            raise ValueError(f"the negative condition {tuple(neg.shape)} must match the prompt's {tuple(ctx.shape)} "
                             f"(one negative, or one per prompt)")
        return neg

    def _image_latents(self, image, b: int, c: int, h: int, w: int) -> torch.Tensor:
        """image (pixels (B, H, W, 3) or (B, 3, H, W) in [-1, 1], or PIL images) -> the model's
        data space: the VAE posterior mean, scaled ((z - shift_factor) * scaling_factor)."""
        if isinstance(image, (list, tuple)) or hasattr(image, "convert"):
            pics = [image] if hasattr(image, "convert") else list(image)
            image = np.stack([np.asarray(p.convert("RGB"), np.float32) / 127.5 - 1.0 for p in pics])
        x = torch.as_tensor(np.array(image, np.float32))  # a copy: inputs may be read-only
        if x.ndim != 4:
            raise ValueError(f"image must be (B, H, W, C) or (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
        if self.vae is not None:
            vc = self.vae.config
            z = self.vae.encode(x.to(self.device, self.vae.dtype)).latent_dist.mean.float()
            x = (z - (vc.shift_factor or 0.0)) * vc.scaling_factor
        if tuple(x.shape[1:]) != (c, h, w) or x.shape[0] not in (1, b):
            raise ValueError(f"image gives data of shape {tuple(x.shape)}; this run samples ({b}, {c}, {h}, {w})")
        return x.expand(b, -1, -1, -1).to(self.device, torch.float32)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        class_label: int | list[int] | None = None,
        prompt_embeds=None,
        num_inference_steps: int = 32,
        guidance_scale: float = 3.0,
        generator: torch.Generator | None = None,
        height: int | None = None,
        width: int | None = None,
        latents: torch.Tensor | None = None,
        num_images_per_prompt: int = 1,
        output_type: str = "pil",
        return_dict: bool = True,
        negative_prompt: str | list[str] | None = None,
        negative_class_label: int | list[int] | None = None,
        negative_prompt_embeds=None,
        guidance_interval: tuple[float, float] = FULL,
        guidance_rescale: float = 0.0,
        image=None,
        image_latents: torch.Tensor | None = None,
        strength: float = 1.0,
    ):
        """height/width in pixels (default: the training size recorded in the transformer's
        config). `latents` (B, C, h, w): the initial noise (else drawn with `generator`).
        negative_*: the weak CFG branch's condition (one, or one per prompt) instead of the null one.
        guidance_interval (lo, hi): CFG only for lo <= t <= hi (t = 1 noise). guidance_rescale:
        phi in [0, 1]. image (pixels in [-1, 1] or PIL; VAE-encoded for latent runs) or
        image_latents (B, C, h, w) in the model's data space: image-to-image at `strength`.
        output_type "pil", "np" (B, H, W, C) in [-1, 1] or "latent"."""
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps}: need at least one step")
        check_guidance(guidance_scale, guidance_interval, guidance_rescale, strength)
        if image is not None and image_latents is not None:
            raise ValueError("give image or image_latents, not both")
        cfg = self.transformer.config
        ctx = self._context(prompt, class_label, prompt_embeds).repeat_interleave(num_images_per_prompt, dim=0)
        b = ctx.shape[0]
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1
        size = getattr(cfg, "sample_size", None) or 32
        h = (height or size * factor) // factor
        w = (width or size * factor) // factor
        dtype = self.transformer.dtype
        if latents is None:
            latents = torch.randn((b, cfg.in_channels, h, w), generator=generator, device="cpu", dtype=torch.float32)
        x = latents.to(self.device, torch.float32)

        steps, t_start = num_inference_steps, 1.0
        if image is not None or image_latents is not None:
            init = (self._image_latents(image, b, cfg.in_channels, h, w) if image is not None
                    else image_latents.to(self.device, torch.float32).expand(b, -1, -1, -1))
            steps, t_start = img2img_steps(num_inference_steps, strength), float(strength)
            x = (1.0 - t_start) * init + t_start * x  # x_t0: the image noised to t0 = strength
        # ouro's grid in the unshifted time; the scheduler appends 0 and applies the run's shift
        self.scheduler.set_timesteps(sigmas=unshifted_grid(steps, float(self.scheduler.config.shift), t_start),
                                     device=self.device)
        neg = self._negative(ctx, negative_prompt, negative_class_label, negative_prompt_embeds)
        weak = neg if neg is not None else torch.zeros_like(ctx)  # the null condition: an all-zero context
        cfg_on = guidance_scale != 1.0
        lo, hi = guidance_interval
        for i, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            sigma = self.scheduler.sigmas[i].to(self.device, torch.float32)
            # float32 on both sides: the bounds compare as the JAX sampler's (t >= lo) & (t <= hi)
            guided = cfg_on and bool((sigma >= np.float32(lo)) & (sigma <= np.float32(hi)))
            ctx_in = torch.cat([ctx, weak]) if guided else ctx  # [cond; weak] in one call
            t = sigma.expand(ctx_in.shape[0])
            x_in = torch.cat([x, x]) if guided else x
            v = self.transformer(x_in.to(dtype), t, ctx_in.to(dtype)).sample.float()
            if guided:
                v_cond, v_weak = v.chunk(2)
                v = combine(v_cond, v_weak, guidance_scale, guidance_rescale)
            x = self.scheduler.step(v, timestep, x).prev_sample.float()

        if output_type == "latent":
            images = x
        elif self.vae is not None:
            vc = self.vae.config
            z = x / vc.scaling_factor + (vc.shift_factor or 0.0)
            images = self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)
        else:
            images = x
        if output_type == "latent":
            return ImagePipelineOutput(images=images) if return_dict else (images,)
        images = images.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C) in [-1, 1]
        if output_type == "pil":
            rgb = images if images.shape[-1] == 3 else np.repeat(images[..., :1], 3, axis=-1)
            images = self.numpy_to_pil(np.clip(rgb / 2 + 0.5, 0, 1))
        return ImagePipelineOutput(images=images) if return_dict else (images,)
