"""The PyTorch side of ouro (the optional `torch` extra: torch, diffusers, transformers).

    xudit.py         XUDiT as a diffusers ModelMixin with HDM's parameter names
    hdm_weights.py   ouro parameters <-> HDM state dict (NumPy; no torch needed)
    hdm_cli.py       `ouro import-hdm` (and the HDM half of `ouro export`)
    export.py        `ouro export RUN --to hdm|diffusers|dit`
    pipeline.py      OuroXUTPipeline (diffusers DiffusionPipeline), copied into exports
    gemma.py         ouro's cached Gemma-3 weights -> transformers' Gemma3TextModel + tokenizer

Nothing here is imported by ouro's JAX code (tests/torch/test_isolation.py checks it): importing
this package imports nothing; each module imports torch only where it needs it.
"""
