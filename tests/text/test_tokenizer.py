"""The SentencePiece model rebuilt from GGUF metadata."""

import numpy as np
import pytest
import sentencepiece as spm

from ouro.text.tokenizer import BYTE, CONTROL, NORMAL, SPACE, USER_DEFINED, Tokenizer, build_model_proto

ROUND_TRIP = [
    "The capital of France is",
    "héllo wörld, ça va? Straße",
    "日本語のテキストと한국어",
    "emoji 🦊🍕 and math ∑ x²",
    "two  spaces,   three, tab\tnewline\n\nend",
    " leading space and trailing ",
    "class_0",
]


@pytest.mark.gemma
@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(encoder, text):
    ids = encoder.tokenizer.encode(text)
    assert ids[0] == 2 and 3 not in ids  # BOS first, never <unk> (byte fallback)
    assert encoder.tokenizer.decode(ids) == text


@pytest.mark.gemma
def test_known_ids_and_special_tokens(encoder):
    tok = encoder.tokenizer
    assert tok.encode("The capital of France is") == [2, 818, 5279, 529, 7001, 563]
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (2, 1, 0, 262144)
    assert tok.sp.id_to_piece(3) == "<unk>" and tok.sp.is_unknown(3)
    # Runs of spaces are user-defined pieces: one token, not one per space.
    assert len(tok.encode("a" + " " * 8 + "b", add_bos=False)) == 3


def test_build_model_proto_on_a_tiny_vocab(tmp_path):
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    pieces = specials + ["  ", "a", "b", SPACE + "b", "ab", SPACE] + [f"<0x{i:02X}>" for i in range(256)]
    types = [CONTROL] * 4 + [USER_DEFINED] + [NORMAL] * 5 + [BYTE] * 256
    scores = np.array([0.0] * 4 + [0.0, -1, -2, -3, -4, -5] + [0.0] * 256, np.float32)
    proto = build_model_proto(pieces, scores, np.array(types), bos_id=2, eos_id=1, unk_id=3, pad_id=0)
    path = tmp_path / "tiny.model"
    path.write_bytes(proto)
    tok = Tokenizer(path)
    sp = tok.sp
    assert sp.id_to_piece(4) == SPACE * 2  # the user-defined "  " is stored escaped
    assert sp.encode("a  b") == [5, 4, 6]
    assert sp.encode("ab") == [8]  # BPE merge
    ids = sp.encode("é")  # not in the vocab: byte fallback to UTF-8 bytes
    assert [sp.id_to_piece(i) for i in ids] == ["<0xC3>", "<0xA9>"]
    assert tok.decode(tok.encode("ab é")) == "ab é"
    with pytest.raises(ValueError, match="differ in length"):
        build_model_proto(pieces[:-1], scores, np.array(types), bos_id=2, eos_id=1, unk_id=3, pad_id=0)
