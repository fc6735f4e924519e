"""Evaluation metrics read from pixels: the shapes dataset's analytic scorer, FID."""
