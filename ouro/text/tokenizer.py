"""The Gemma-3 tokenizer, rebuilt from GGUF metadata as a SentencePiece BPE model.

The GGUF stores the vocabulary as three parallel arrays (tokens, scores, token types,
whose numbering is SentencePiece's own piece types). We write them into a
`ModelProto` with the settings of Gemma's tokenizer: BPE, byte fallback, identity
normaliser, no dummy prefix, no whitespace collapsing. Spaces in user-defined pieces
(runs of spaces) are written as U+2581, the character SentencePiece escapes spaces to
before matching pieces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def build_model_proto(
    tokens: Sequence[str], scores: np.ndarray, types: np.ndarray, *, bos_id: int, eos_id: int, unk_id: int, pad_id: int
) -> bytes:
    """Serialised SentencePiece model for the given vocabulary."""
    if not (len(tokens) == len(scores) == len(types)):
        raise ValueError(f"tokenizer arrays differ in length: {len(tokens)}, {len(scores)}, {len(types)}")
    m = sp_pb.ModelProto()
    for i, (tok, score, typ) in enumerate(zip(tokens, scores.tolist(), types.tolist())):
        piece = m.pieces.add()
        piece.piece = tok.replace(" ", SPACE) if typ == USER_DEFINED else tok
        piece.score = float(score)
        # The GGUF types <unk> as CONTROL; SentencePiece requires exactly one UNKNOWN piece.
        piece.type = UNKNOWN if i == unk_id else int(typ)
    t = m.trainer_spec
    t.model_type = sp_pb.TrainerSpec.BPE
    t.vocab_size = len(tokens)
    t.byte_fallback = True
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = unk_id, bos_id, eos_id, pad_id
    t.unk_piece, t.bos_piece, t.eos_piece, t.pad_piece = (tokens[unk_id], tokens[bos_id], tokens[eos_id], tokens[pad_id])
    n = m.normalizer_spec
    n.name = "identity"
    n.add_dummy_prefix = False
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    return m.SerializeToString()


class Tokenizer:
    """`encode(text)` -> token ids with BOS first; `decode(ids)` -> text."""

    def __init__(self, model_path: str | Path):
        self.path = Path(model_path)
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        self.bos_id, self.eos_id, self.pad_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.pad_id()

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        ids = self.sp.encode(text)
        return [self.bos_id, *ids] if add_bos else list(ids)

    def encode_batch(self, texts: Sequence[str], *, add_bos: bool = True) -> list[list[int]]:
        return [[self.bos_id, *ids] if add_bos else ids for ids in self.sp.encode(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) not in (self.bos_id, self.pad_id)])
