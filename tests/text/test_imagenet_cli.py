"""ImageNet class names (real, in order) and the `ouro embed` command."""

import numpy as np
import pytest

from ouro.text.cli import main
from ouro.text.imagenet import check_names, class_names, placeholder_names


def test_class_names_are_real_and_ordered():
    names = class_names()
    assert len(names) == 1000
    assert names[0] == "tench, Tinca tinca"
    assert names[207] == "golden retriever"
    assert names[281] == "tabby, tabby cat"
    assert names[963] == "pizza, pizza pie"
    assert names[999].startswith("toilet tissue")
    assert class_names("first")[281] == "tabby"
    assert not any(n.startswith("class_") for n in names)


def test_placeholder_names_are_refused():
    with pytest.raises(ValueError, match="placeholders .* 'class_0'"):
        check_names(placeholder_names())
    shifted = class_names()[1:] + ["tench"]
    with pytest.raises(ValueError, match="class 0 is 'goldfish"):
        check_names(shifted)


def test_bad_text_files_fail_cleanly_and_write_nothing(tmp_path):
    out = tmp_path / "e.npy"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"latin1.txt is not UTF-8 \(invalid byte at offset 3\)"):
        main(["--texts", str(bad), "--out", str(out)])
    blank = tmp_path / "blank.txt"
    blank.write_text("one\n\nthree\n")
    with pytest.raises(SystemExit, match="line 2 is blank"):
        main(["--texts", str(blank), "--out", str(out)])
    with pytest.raises(SystemExit, match="cannot read"):
        main(["--texts", str(tmp_path / "missing.txt"), "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["--texts", str(blank), "--out", str(tmp_path / "e.txt")])  # not .npy
    assert list(tmp_path.glob("*.npy*")) == []


@pytest.mark.gemma
def test_cli_texts_and_imagenet(encoder, tmp_path):
    from ouro.text import embed

    src = tmp_path / "t.txt"
    src.write_text("a handwritten digit seven\nzwölf Äpfel\n", encoding="utf-8")
    assert main(["--texts", str(src), "--out", str(tmp_path / "t.npy")]) == 0
    got = np.load(tmp_path / "t.npy")
    np.testing.assert_allclose(got, embed(["a handwritten digit seven", "zwölf Äpfel"], progress=False), atol=1e-6)

    out = tmp_path / "imagenet_class_embeddings.npy"
    assert main(["--imagenet", "--out", str(out)]) == 0
    vecs = np.load(out)
    assert vecs.shape == (1000, 640) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    names = class_names()
    for i in (0, 207, 963):  # row i is class i
        np.testing.assert_allclose(vecs[i], embed([names[i]], use_cache=False, progress=False)[0], atol=2e-5)
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
