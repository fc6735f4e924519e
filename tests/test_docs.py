"""The README and docs/ say what a clone of this repository holds and does."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_relative_links_resolve_inside_the_repository():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s#]+)", doc.read_text()):
            if "://" in target:
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: broken link {target}"


def test_nothing_points_outside_the_clone():
    """../shared/spec/xut.md lived beside the repository on one machine, in no clone."""
    texts = [README, *(p.read_text() for p in (ROOT / "notebooks").glob("*.py")),
             *(p.read_text() for p in (ROOT / "ouro").rglob("*.py"))]
    assert not [t for t in texts if "shared/spec" in t]
    assert "](docs/xut.md)" in README


def test_the_demo_grid_is_described_as_drawn():
    """The demo scores sample.per_class images per digit and draws save_grid's per_row of them."""
    import inspect

    from ouro.train import preset_config
    from ouro.train.sample import save_grid

    per_class = preset_config("digits").sample.per_class
    per_row = inspect.signature(save_grid).parameters["per_row"].default
    assert f"samples {per_class} images per digit" in README and f"all {10 * per_class}" in README
    assert f"first {per_row} of each digit as a labelled 10×{per_row} grid" in " ".join(README.split())
