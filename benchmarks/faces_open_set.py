"""Open-set identification as a user meets it: a gallery of people enrolled with one photo each, probes of those
people and of strangers. Measures the rate of known people named correctly and of strangers called "unknown", and
chooses the identify rule on dev people (the test people are measured once, with the rule chosen).

    python benchmarks/faces_open_set.py ../shared/data/lfw --output runs/faces_open_set

People: LFW people in name order after the first 800 (the first 400 calibrated the shipped model's thresholds, the
next 400 measured it), with at least 2 photos; seeded draws give dev (`--people` enrolled + as many strangers) and,
disjoint, test (the same sizes). A person's first photo (name order) is enrolled; their second is the probe.
A rule names the closest person when their distance d1 <= threshold and the runner-up person is at least `margin`
farther (d2 - d1 >= margin); else "unknown". Prints a table and writes `results.json`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def embeddings(faces, paths):
    """{path: unit embedding} of the photos whose face is found."""
    found = {}
    for path in paths:
        try:
            found[path] = faces.embed(path)
        except ValueError as error:
            print(f"left out: {error}", file=sys.stderr)
    return found


def outcomes(gallery_names, gallery_vectors, probes, threshold, margin):
    """(known named correctly, strangers called unknown) rates of one rule; `probes` are (true name or None, vector)."""
    from dlapps.gallery import GalleryIndex

    index = GalleryIndex(gallery_names, gallery_vectors)
    known, strangers = [], []
    for name, vector in probes:
        ranked = index.rank(vector, "nearest", 2)
        (best, d1), d2 = ranked[0], (ranked[1][1] if len(ranked) > 1 else np.inf)
        named = best if d1 <= threshold and d2 - d1 >= margin else "unknown"
        (known if name is not None else strangers).append(named == name if name else named == "unknown")
    return float(np.mean(known)), float(np.mean(strangers))


def split(data, people, seed):
    """(dev, test): each {"enrolled": {name: (photo, probe)}, "strangers": [probe]} from disjoint people."""
    folders = sorted(p for p in Path(data).iterdir() if p.is_dir())[800:]
    usable = [(f.name, sorted(f.iterdir())[:2]) for f in folders if len(list(f.iterdir())) >= 2]
    order = np.random.default_rng(seed).permutation(len(usable))
    chosen = [usable[i] for i in order[: 4 * people]]
    parts = []
    for start in (0, 2 * people):
        block = chosen[start : start + 2 * people]
        parts.append({"enrolled": {name: tuple(map(str, photos)) for name, photos in block[:people]},
                      "strangers": [str(photos[1]) for _, photos in block[people:]]})  # fmt: skip
    return parts


def measure(faces, part):
    paths = [p for pair in part["enrolled"].values() for p in pair] + part["strangers"]
    vectors = embeddings(faces, paths)
    names = [n for n, (photo, _) in part["enrolled"].items() if photo in vectors]
    gallery = np.stack([vectors[part["enrolled"][n][0]] for n in names])
    probes = [(n, vectors[part["enrolled"][n][1]]) for n in names if part["enrolled"][n][1] in vectors]
    probes += [(None, vectors[p]) for p in part["strangers"] if p in vectors]
    return names, gallery, probes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="LFW: one folder of photos per person")
    parser.add_argument("--output", type=Path, default=Path("runs/faces_open_set"))
    parser.add_argument("--model", default="dlib", help="face model folder or preset")
    parser.add_argument("--people", type=int, default=100, help="people enrolled (and as many strangers) per part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known-goal", type=float, default=0.95)
    parser.add_argument("--stranger-goal", type=float, default=0.90)
    parser.add_argument(
        "--margins",
        type=float,
        nargs="+",
        default=[0.0, 0.01, 0.02, 0.03, 0.05, 0.08],
        help="margins tried on dev (0 alone: the threshold rule `dlapps faces identify` applies)",
    )
    args = parser.parse_args()
    import dlapps

    faces = dlapps.FaceVerifier.from_folder(args.model)
    dev, test = split(args.data, args.people, args.seed)
    dev_measured, test_measured = measure(faces, dev), measure(faces, test)
    stored = {"threshold": faces.open_set_threshold, "margin": 0.0}
    # The rule on dev: the best known rate among the rules that call at least the goal's share of strangers unknown
    # (ties: more strangers called unknown).
    grid = [(t, m) for t in np.arange(0.30, 0.50, 0.005) for m in args.margins]
    scored = [(outcomes(*dev_measured, t, m), t, m) for t, m in grid]
    meeting = [s for s in scored if s[0][1] >= args.stranger_goal] or scored
    (dev_known, dev_strangers), threshold, margin = max(meeting, key=lambda s: (s[0][0], s[0][1]))
    chosen = {"threshold": round(float(threshold), 3), "margin": margin}
    rows = {
        "stored rule, dev": outcomes(*dev_measured, stored["threshold"], 0.0),
        "chosen rule, dev": (dev_known, dev_strangers),
        "stored rule, test": outcomes(*test_measured, stored["threshold"], 0.0),
        "chosen rule, test": outcomes(*test_measured, chosen["threshold"], chosen["margin"]),
    }
    print(f"{len(dev_measured[0])} enrolled, {len(dev_measured[2])} probes (dev); "
          f"{len(test_measured[0])} enrolled, {len(test_measured[2])} probes (test)")  # fmt: skip
    print(f"stored: {stored}; chosen on dev: {chosen}")
    print(f"{'':20s} {'known named':>12s} {'strangers unknown':>18s}")
    for label, (known, strangers) in rows.items():
        print(f"{label:20s} {known:12.3f} {strangers:18.3f}")
    args.output.mkdir(parents=True, exist_ok=True)
    result = {"stored": stored, "chosen": chosen, **{k: {"known_named": v[0], "strangers_unknown": v[1]}
                                                     for k, v in rows.items()}}  # fmt: skip
    (args.output / "results.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
