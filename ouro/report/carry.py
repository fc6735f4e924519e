"""Regenerating the committed report on a machine that has only some of its runs.

`outputs/` is git-ignored, so a machine that regenerates reports/ usually holds only the runs
it made; rendering from those alone would silently drop every other run's numbers. Instead
`ouro report --reports reports` regenerates what it can and carries the rest from the
committed snapshot (`git show HEAD:reports/Detail.md`):

- a run block (a `###`/`####` heading naming a run of the snapshot, up to the next heading of
  its level or above) whose run is not under this machine's outputs/ is kept, word for word,
  in its section, after the block that preceded it there, with one line saying where it came
  from (the commit and date of the snapshot); a block carried before keeps its first line;
- the Runs table keeps the rows of absent runs (by column name, `(carried)` after the name,
  under one line naming the snapshot they were first carried from);
- a section's "Not yet run" line goes where a carried block now fills it;
- figures a carried block shows are kept (not pruned).

Sections that pool runs into one figure or fit (loss curves, compute frontier) are drawn
from this machine's runs only; the header of the report says so and lists the carried runs.
Regenerating again after committing the result changes nothing: carried text keeps its
first provenance.
A run present here is always regenerated, never carried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CARRIED = "> **Carried from the committed snapshot**"
ROWS_NOTE = "Rows marked (carried):"
_HEADING = re.compile(r"^(#{2,4}) ")
_RUN_HEADING = re.compile(r"^#{3,4} .*?`([^`]+)`")
_FROM_RUN = re.compile(r"^From run `([^`]+)`")
_NOT_YET = ("> **Not yet run:**", "> Not yet run:", "Not yet run:")
_CELL_NAME = re.compile(r"`([^`]+)`")


@dataclass
class Block:
    heading: str | None  # None: the section's text before its first sub-heading
    level: int
    lines: list[str] = field(default_factory=list)


def _sections(text: str) -> tuple[list[str], dict[str, list[Block]], list[str]]:
    """(lines before the first `## `, {`## ` heading: its blocks}, the headings in order)."""
    head, sections, order, cur = [], {}, [], None
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m and len(m.group(1)) == 2:
            cur = sections.setdefault(line, [Block(None, 2)])
            order.append(line)
        elif cur is None:
            head.append(line)
        elif m:
            cur.append(Block(line, len(m.group(1))))
        else:
            cur[-1].lines.append(line)
    return head, sections, order


def _render(blocks: list[Block], heading: str) -> list[str]:
    out = [heading]
    for b in blocks:
        out += ([b.heading] if b.heading else []) + b.lines
    return out


def _run_of(heading: str, known: set[str]) -> str | None:
    """The snapshot run a sub-heading names (`name`, or its directory outputs/runs/name)."""
    m = _RUN_HEADING.match(heading)
    if not m:
        return None
    name = m.group(1).removeprefix("outputs/runs/").removeprefix("outputs/")
    return name if name in known else None


def _present(name: str, here: set[str]) -> bool:
    return name in here or any(h.startswith(name + "/") for h in here)


def _row_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _row_name(line: str) -> str | None:
    """The run a Runs-table row is about: the first `name` of its first cell."""
    m = _CELL_NAME.match(_row_cells(line)[0])
    return m.group(1) if m else None


def _drop_not_yet(lines: list[str]) -> list[str]:
    """The lines without "Not yet run" placeholders, and the blank line each leaves doubled."""
    out: list[str] = []
    for ln in lines:
        if ln.startswith(_NOT_YET) or (not ln.strip() and out and not out[-1].strip()):
            continue
        out.append(ln)
    return out


def _placeholder(b: Block) -> bool:
    """A sub-block that only says its artefact is not yet run (a carried block replaces it)."""
    body = [ln for ln in b.lines if ln.strip()]
    return b.heading is not None and bool(body) and all(ln.startswith(_NOT_YET) for ln in body)


def snapshot_runs(text: str) -> set[str]:
    """Run names a report names: its Runs table's first column and its `From run` lines."""
    _, sections, _ = _sections(text)
    names = set()
    for line in text.splitlines():
        m = _FROM_RUN.match(line)
        if m:
            names.add(m.group(1))
    for b in sections.get("## Runs", []):
        for line in b.lines:
            if line.startswith("| `") and _row_name(line):
                names.add(_row_name(line))
    return names


def _carry_rows(old: list[Block], new: list[Block], absent: set[str], mark: str) -> list[str]:
    """Append the absent runs' rows of the old Runs table to the new one, by column name;
    returns their run names."""
    old_lines = [ln for b in old for ln in b.lines]
    old_head = next((ln for ln in old_lines if ln.startswith("| run |")), None)
    rows = [ln for ln in old_lines if ln.startswith("| `") and _row_name(ln) in absent]
    if old_head is None or not rows:
        return []
    lines = new[0].lines
    at = max((i for i, ln in enumerate(lines) if ln.startswith("|")), default=None)
    if at is None:  # no run here at all: the old table, with the paragraph that explains it
        intro = _drop_not_yet(old_lines[:old_lines.index(old_head)])
        lines[:] = intro + [old_head, "|" + "---|" * len(_row_cells(old_head))]
        at, new_head = len(lines) - 1, old_head
    else:
        new_head = next(ln for ln in lines if ln.startswith("| run |"))
    cols_old, cols_new = _row_cells(old_head), _row_cells(new_head)
    carried = []
    for row in rows:
        cells = dict(zip(cols_old, _row_cells(row)))
        if not cells["run"].endswith("(carried)"):
            cells["run"] = f"{cells['run']} (carried)"
        carried.append("| " + " | ".join(cells.get(c, "—") for c in cols_new) + " |")
    # rows carried before keep the provenance line they came with (a rerun changes nothing)
    note = next((ln for ln in old_lines if ln.startswith(ROWS_NOTE)), f"{ROWS_NOTE} {mark}.")
    lines[at + 1:at + 1] = [*carried, "", note]
    if lines[-1].strip():  # the next section's heading stays a paragraph away
        lines.append("")
    return [_row_name(row) for row in rows]


def carry(new_text: str, old_text: str, here: set[str], source: str) -> tuple[str, list[str], list[str]]:
    """Merge the absent runs' blocks of `old_text` (the committed snapshot) into `new_text`.
    `here`: run names under this machine's outputs/; `source`: "commit `abc1234`, 2026-12-06".
    Returns (Markdown, carried run names, figure file names the carried blocks show)."""
    known = snapshot_runs(old_text)
    absent = {n for n in known if not _present(n, here)}
    if not absent:
        return new_text, [], []
    mark = f"{CARRIED} ({source}): this run is not under this machine's outputs/."
    head, new, order = _sections(new_text)
    _, old, _ = _sections(old_text)
    carried: set[str] = set()
    figures: list[str] = []
    for title, old_blocks in old.items():
        if title not in new:
            continue
        blocks = new[title]
        if title == "## Runs":
            carried |= set(_carry_rows(old_blocks, blocks, absent, f"from the committed snapshot ({source}); "
                                                                   "not under this machine's outputs/"))
            continue
        have = {b.heading for b in blocks}
        here_now: set[str | None] = set()  # the headings carried into this section
        anchor = None  # the old block before: a carried block goes after it (or after the last carried)
        for b in old_blocks:
            name = _run_of(b.heading, known) if b.heading else None
            if name is None or name not in absent or b.heading in have:
                anchor = b.heading if b.heading in have or b.heading is None else anchor
                continue
            copy = Block(b.heading, b.level, list(b.lines))
            if not any(ln.startswith(CARRIED) for ln in copy.lines):
                copy.lines[0:0] = ["", mark]
            at = next((j for j, x in enumerate(blocks) if x.heading == anchor), len(blocks) - 1)
            blocks[at].lines[:] = _drop_not_yet(blocks[at].lines)
            blocks.insert(at + 1, copy)
            anchor = copy.heading  # the next carried block of this section goes after this one
            have.add(copy.heading)
            here_now.add(copy.heading)
            carried.add(name)
            figures += re.findall(r"\]\(figures/([^)\s]+)\)", "\n".join(copy.lines))
        if here_now:  # a "not yet run" sub-block of this section is now filled by what was carried
            blocks[:] = [b for b in blocks if not _placeholder(b)]
    out = list(head)
    if carried:
        at = next((i for i, ln in enumerate(out) if ln.startswith("_Generated by")), len(out) - 1) + 1
        out[at:at] = ["", f"> **Carried runs.** {len(carried)} run(s) of the committed snapshot are not under "
                      "this machine's outputs/: their blocks below are carried word for word from it, each marked "
                      "with the commit and date it came from: " + ", ".join(f"`{n}`" for n in sorted(carried))
                      + ". Figures and fits that pool runs (loss curves, compute frontier) are drawn from this "
                      "machine's runs only."]
    for title in order:
        out += _render(new[title], title)
    return "\n".join(out).rstrip() + "\n", sorted(carried), figures


def snapshot(reports: Path, root: Path) -> tuple[str, str] | None:
    """(the committed Detail.md in `reports`, "commit `sha`, date"), or None when `reports`
    holds no committed Detail.md (outputs/report/ is git-ignored: nothing is carried there)."""
    import subprocess

    try:
        rel = (reports.resolve() / "Detail.md").relative_to(root.resolve()).as_posix()
    except ValueError:
        return None

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None

    text = git("show", f"HEAD:{rel}")
    info = (git("log", "-1", "--format=%h %cs", "--", rel) or "").split()
    if not text or len(info) != 2:
        return None
    return text, f"`{rel}` at commit `{info[0]}`, {info[1]}"
