"""Building blocks of XUT: one concept per file (attention, adaln, rope, embed, mlp, norm,
block, stack, tread, linear)."""
