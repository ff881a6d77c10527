"""Split an LFW-style folder of identities into disjoint train / dev / test people and write the dev and test pair
files (1,000 same-person + 1,000 different-people pairs each, seeded), as the face app's goals are measured:

    python benchmarks/lfw_protocol.py ../shared/data/lfw --output runs/lfw_protocol
    dlapps faces calibrate runs/lfw_protocol/dev_pairs.txt --output runs/faces_calibrated
    dlapps faces evaluate runs/lfw_protocol/test_pairs.txt --model runs/faces_calibrated --output runs/faces_test
    dlapps faces train runs/lfw_protocol/train --output runs/faces_lite0 --backbone efficientnet_lite0

People in name order: the first 400 are dev, the next 400 test, the rest train (`train/` holds symbolic links to
their folders, so nothing is copied). No person is in two parts.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlapps.data.pairs import sample_pairs, write_pairs_file  # noqa: E402
from dlapps.data.readers import read_image_folder  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lfw", help="a folder of identities (one subfolder of photos per person)")
    parser.add_argument("--output", required=True, help="a new folder for train/, dev_pairs.txt, test_pairs.txt")
    parser.add_argument("--dev-people", type=int, default=400)
    parser.add_argument("--test-people", type=int, default=400)
    parser.add_argument("--same-pairs", type=int, default=1000, help="same-person pairs per file (as many different)")
    args = parser.parse_args()

    files, labels, names, _ = read_image_folder(args.lfw)
    by_person = [[f for f, label in zip(files, labels, strict=True) if label == i] for i in range(len(names))]
    order = sorted(range(len(names)), key=lambda i: names[i])
    dev, test = order[: args.dev_people], order[args.dev_people : args.dev_people + args.test_people]
    train = order[args.dev_people + args.test_people :]
    output = Path(args.output)
    (output / "train").mkdir(parents=True, exist_ok=False)
    for person in train:
        (output / "train" / names[person]).symlink_to(Path(by_person[person][0]).resolve().parent)
    summary = {"train_people": len(train), "train_images": sum(len(by_person[p]) for p in train)}
    for part, people, seed in (("dev", dev, 0), ("test", test, 1)):
        items = [f for p in people for f in by_person[p]]
        pairs, same = sample_pairs([len(by_person[p]) for p in people], same_total=args.same_pairs, seed=seed)
        rows = [(items[a], items[b], int(s)) for (a, b), s in zip(pairs, same, strict=True)]
        span = f"{names[people[0]]} .. {names[people[-1]]}"
        header = (f"{part} pairs of {len(people)} people of {args.lfw} ({span} in name order), seed {seed}: "
                  f"{int(same.sum())} same, {int((1 - same).sum())} different")  # fmt: skip
        write_pairs_file(output / f"{part}_pairs.txt", rows, header)
        summary[f"{part}_people"], summary[f"{part}_pairs"] = len(people), len(rows)
    (output / "split.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
