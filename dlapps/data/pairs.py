"""Verification pairs, as LFW's protocol files hold them (Huang et al., 2007): same-person pairs and as many
different-people pairs, sampled with a seed from groups of items (the images, or the face chips, of each person),
and the pairs file format `path_a<TAB>path_b<TAB>1|0` with paths relative to the file's folder.
"""

import os
from pathlib import Path

import numpy as np

from dlapps.data.readers import DataError


def sample_pairs(group_sizes, same_per_person=None, same_total=None, seed=0):
    """Seeded pairs over groups of items laid end to end (group 0's items first, then group 1's, ...).

    Args:
        group_sizes: items per person, e.g. [3, 2, 5].
        same_per_person: at most this many same-person pairs per person (None: no cap).
        same_total: stop at this many same-person pairs, taken round-robin over the people in a seeded order, so
            people with many images do not crowd out the others (None: every person's pairs up to the cap).
        seed: the sampling seed.

    Returns:
        (pairs, same): int64 (n, 2) indices into the items, and int64 (n,) 1 for the same-person pairs (first), 0
        for the different-people pairs (as many, no pair repeated, two distinct people each).

    Raises:
        DataError: no person has two items, fewer than two people, or too few items for the pairs asked.
    """
    sizes = [int(s) for s in group_sizes]
    starts = np.cumsum([0, *sizes])
    rng = np.random.default_rng(seed)
    # Each person's same pairs in a seeded order; then round-robin over the people (shuffled).
    queues = []
    for person, size in enumerate(sizes):
        candidates = [(starts[person] + a, starts[person] + b) for a in range(size) for b in range(a + 1, size)]
        order = rng.permutation(len(candidates))[: same_per_person if same_per_person else None]
        queues.append([candidates[i] for i in order])
    if not any(queues):
        raise DataError("no person has two images: same-person pairs cannot be made")
    if sum(1 for size in sizes if size) < 2:
        raise DataError("fewer than two people: different-people pairs cannot be made")
    same, people, depth = [], rng.permutation(len(queues)), 0
    limit = same_total if same_total else sum(len(q) for q in queues)
    while len(same) < limit and depth < max(len(q) for q in queues):
        same += [queues[p][depth] for p in people if depth < len(queues[p])][: limit - len(same)]
        depth += 1
    if same_total and len(same) < same_total:
        raise DataError(f"only {len(same)} same-person pairs can be made; {same_total} asked")
    owners = np.repeat(np.arange(len(sizes)), sizes)
    possible = (len(owners) ** 2 - sum(s * s for s in sizes)) // 2
    if possible < len(same):
        raise DataError(f"only {possible} different-people pairs can be made; {len(same)} needed")
    different, seen = [], set()
    while len(different) < len(same):
        a, b = (int(i) for i in rng.integers(0, len(owners), 2))
        if owners[a] != owners[b] and (min(a, b), max(a, b)) not in seen:
            seen.add((min(a, b), max(a, b)))
            different.append((a, b))
    pairs = np.array(same + different, np.int64)
    return pairs, np.array([1] * len(same) + [0] * len(different), np.int64)


PAIRS_LINE = "path_a<TAB>path_b<TAB>1|0"


def read_pairs_lines(path):
    """A pairs file's pairs with their line numbers, and its malformed lines; blank lines and lines starting with #
    are skipped.

    Returns:
        (pairs, problems): [(line_number, path_a, path_b, same)] with paths relative to the file's folder, and
        [(line_number, message)] for each line that is not `a<TAB>b<TAB>1|0` (the message names the file and line).
    """
    path = Path(path)
    pairs, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[2].strip() not in ("0", "1") or not fields[0].strip() or not fields[1].strip():
            problems.append((number, f"{path}:{number}: expected '{PAIRS_LINE}'. Received: {line!r}"))
            continue
        pairs.append((number, path.parent / fields[0], path.parent / fields[1], int(fields[2])))
    return pairs, problems


def read_pairs_file(path):
    """[(path_a, path_b, same)] from a pairs file; blank lines and lines starting with # are skipped.

    Raises:
        DataError: a line that is not `a<TAB>b<TAB>1|0`, named with its line number (`read_pairs_lines` reads the
            good lines and lists the bad ones instead).
    """
    pairs, problems = read_pairs_lines(path)
    if problems:
        raise DataError(problems[0][1])
    return [(a, b, same) for _, a, b, same in pairs]


def write_pairs_file(path, pairs, header=None):
    """Write [(path_a, path_b, same)] as a pairs file, paths relative to its folder; `header` as # lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    lines = [f"# {line}" for line in (header or "").splitlines()]
    lines += [f"{os.path.relpath(Path(a).resolve(), folder)}\t{os.path.relpath(Path(b).resolve(), folder)}\t{int(s)}"
              for a, b, s in pairs]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path
