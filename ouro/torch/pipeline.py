"""OuroXUTPipeline: sample an exported ouro XUT model with diffusers (no ouro, no JAX).

    pipe = DiffusionPipeline.from_pretrained("exported/", trust_remote_code=True)
    images = pipe(class_label=[3, 7], num_inference_steps=32, guidance_scale=3.0,
                  generator=torch.Generator().manual_seed(0)).images          # PIL images
    images = pipe(prompt_embeds=vectors, ...)   # pooled text embeddings, as ouro.text.embed gives

ouro's sampler, step for step (ouro/flow/samplers.py): rectified flow with t = 1 noise and
v = eps - x0; Euler on the uniform grid t_i = 1 - i/N (passed to the scheduler as its sigmas:
FlowMatchEulerDiscreteScheduler's own default grid stops at 1/num_train_timesteps, not 0);
classifier-free guidance v = v_uncond + s (v_cond - v_uncond) with both passes in ONE batched
call, the unconditional one on the family's null condition (an all-zero context for XUT).
Latent runs decode with the exported AutoencoderKL (latents / scaling_factor + shift_factor);
pixel runs return the model's output. Images are in [-1, 1] before conversion to PIL.

This file imports only torch, numpy, PIL and diffusers: `ouro export --to diffusers` copies it
into the exported folder (pipeline.py).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput


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
    ):
        """height/width in pixels (default: the training size recorded in the transformer's
        config). `latents` (B, C, h, w): the initial noise (else drawn with `generator`).
        output_type "pil", "np" (B, H, W, C) in [-1, 1] or "latent"."""
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps}: need at least one step")
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

        sigmas = np.linspace(1.0, 0.0, num_inference_steps + 1)[:-1]  # ouro's grid; the scheduler appends 0
        self.scheduler.set_timesteps(sigmas=sigmas, device=self.device)
        cfg_on = guidance_scale != 1.0
        ctx_in = torch.cat([ctx, torch.zeros_like(ctx)]) if cfg_on else ctx  # [cond; null]
        for i, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            t = self.scheduler.sigmas[i].to(self.device, torch.float32).expand(ctx_in.shape[0])
            x_in = torch.cat([x, x]) if cfg_on else x
            v = self.transformer(x_in.to(dtype), t, ctx_in.to(dtype)).sample.float()
            if cfg_on:
                v_cond, v_null = v.chunk(2)
                v = v_null + guidance_scale * (v_cond - v_null)
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
