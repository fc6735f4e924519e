"""Converters into the sharded format: Ouroboros PT files, image folders, parquet / HF datasets.

Each plans its shards from its inputs alone, then writes them through ShardWriter
(atomic files, resumable: ouro/data/writer.py) with a progress bar.
"""

from ouro.data.convert.images import convert_images
from ouro.data.convert.parquet import convert_parquet
from ouro.data.convert.pt import convert_pt

__all__ = ["convert_images", "convert_parquet", "convert_pt"]
