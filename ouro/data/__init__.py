"""Datasets: the embedded digits (default, no download) and sharded pre-computed latents."""

from ouro.data.digits import CAPTIONS, Digits, load_digits
from ouro.data.format import read_index
from ouro.data.iterator import EpochIterator
from ouro.data.pipeline import ArraySource, BatchOrder, Loader
from ouro.data.sharded import load_host_arrays, sharded_loader
from ouro.data.source import ShardedSource
from ouro.data.writer import ShardWriter, write_shards

__all__ = ["CAPTIONS", "Digits", "load_digits", "EpochIterator", "ArraySource", "BatchOrder",
           "Loader", "ShardedSource", "ShardWriter", "load_host_arrays", "read_index",
           "sharded_loader", "write_shards"]
