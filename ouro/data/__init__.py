"""Datasets: the embedded digits (default, no download) and sharded pre-computed latents."""

from ouro.data.digits import CAPTIONS, Digits, load_digits
from ouro.data.iterator import EpochIterator
from ouro.data.sharded import host_iterator, load_host_arrays, write_shards

__all__ = ["CAPTIONS", "Digits", "load_digits", "EpochIterator", "host_iterator",
           "load_host_arrays", "write_shards"]
