"""Kohya-style image folders (sd-scripts' DreamBooth layout), as people already have them:

    train/
      10_mychar/            <repeats>_<name>: every image below it counts 10 times
        a.png  a.txt        caption: same stem, .txt or .caption (UTF-8)
        pose/b.jpg  pose/b.caption     nested folders belong to the nearest <repeats>_ folder
      1_background/ ...

`read_kohya(root)` walks the tree and returns (image path relative to root, caption, repeats)
per image. Every image needs a non-empty caption: the missing and empty ones are all named in
one error (Kohya would silently fall back to the folder's name; a dataset built for a text-
conditioned model should not). Images outside any `<repeats>_` folder count once.
"""

from __future__ import annotations

import re
from pathlib import Path

from ouro.errors import UserError

REPEAT_DIR = re.compile(r"^(\d+)_(.+)$")
CAPTION_SUFFIXES = (".txt", ".caption")


def is_kohya(root: Path) -> bool:
    """True when a folder directly under root is named `<repeats>_<name>`."""
    return any(p.is_dir() and REPEAT_DIR.match(p.name) for p in root.iterdir())


def repeats_of(root: Path, image: Path) -> int:
    """Repeats of the nearest enclosing `<repeats>_<name>` folder (1 if none)."""
    for parent in image.relative_to(root).parents:
        m = REPEAT_DIR.match(parent.name)
        if m:
            n = int(m.group(1))
            if n < 1:
                raise UserError(f"{root / parent}: a repeat count must be >= 1, got {n}")
            return n
    return 1


def caption_of(image: Path, read_text) -> str | None:
    """The caption beside `image` (.txt, else .caption); None when absent or empty. Both files
    present with different text is an error (which one would Kohya's config have read?)."""
    found = {s: read_text(image.with_suffix(s)).strip() for s in CAPTION_SUFFIXES if image.with_suffix(s).is_file()}
    if len(set(found.values())) > 1:
        raise UserError(f"{image}: {image.stem}.txt and {image.stem}.caption differ; keep one caption file")
    text = next(iter(found.values()), "")
    return text or None


def read_kohya(root: Path, image_suffixes: tuple[str, ...], read_text) -> list[tuple[str, str, int]]:
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in image_suffixes)
    if not images:
        raise UserError(f"{root}: no images ({', '.join(image_suffixes)}) found")
    rows, missing = [], []
    for img in images:
        caption = caption_of(img, read_text)
        if caption is None:
            missing.append(img)
            continue
        rows.append((str(img.relative_to(root)), caption, repeats_of(root, img)))
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise UserError(f"{len(missing)} image(s) have no caption or an empty one "
                        f"(same-stem {' or '.join(CAPTION_SUFFIXES)}): {shown}")
    return rows
