"""Analysis: embedding statistics and maps, scaling-law fits."""
