"""Building blocks: one concept per file. XUT's (attention, adaln, rope, embed, mlp, norm,
block, stack, tread, linear) and the other families' (adaln_zero: DiT/MMDiT modulation,
posemb: fixed 2-D sin-cos positions, masks: joint-attention masks, joint_attention: MMDiT's
per-modality projections with one attention over all tokens)."""
