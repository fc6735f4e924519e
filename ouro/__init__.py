"""ouro: XUT diffusion transformers trained with rectified flow, in JAX + Flax NNX.

Layout by role: `ouro.nn` (blocks), `ouro.model` (XUDiT and presets), `ouro.flow`
(objective, samplers, guidance), `ouro.text` (Gemma-3 encoder), `ouro.data`,
`ouro.train`, `ouro.sharding`, `ouro.analysis`, `ouro.report`, `ouro.runs`, `ouro.plan`, `ouro.cli`.
Submodules are imported on use so `import ouro` stays cheap.
"""

__version__ = "0.1.0"
