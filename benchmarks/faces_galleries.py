"""Enroll and identify on two small real galleries, with the library the `enroll` / `identify` verbs use:

- ORL (AT&T, 40 people x 10 photos): the first `--enroll` photos of each person are enrolled, the rest are probes
  (closed set: top-1 accuracy; then each probe again with its own person left out: the share of strangers called
  "unknown" at the model's open-set threshold).
- The course's Coursera faces (12 people, one photo each; camera_0..3 labelled by the assignment notebook:
  younes, bertrand, benoit, bertrand; camera_4 and camera_5 are unlabelled and only reported).

    python benchmarks/faces_galleries.py --orl ../shared/data/orl_faces --coursera ../shared/data/coursera_faces
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COURSERA_PROBES = {"camera_0": "younes", "camera_1": "bertrand", "camera_2": "benoit", "camera_3": "bertrand"}


def identify_all(index, queries, mode):
    """[(truth, best name, distance, nearest other person's distance)] for (truth, embedding) queries."""
    rows = []
    for truth, embedding in queries:
        ranked = index.rank(embedding, mode)
        others = [d for name, d in ranked if name != truth]
        rows.append((truth, ranked[0][0], ranked[0][1], others[0] if others else float("inf")))
    return rows


def main():
    from dlapps.apps.face_verification.app import FaceModel, embed_files
    from dlapps.cli.common import default_model_dir
    from dlapps.gallery import GalleryIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orl", required=True, help="the ORL folder (s1..s40)")
    parser.add_argument("--coursera", required=True, help="the Coursera faces folder (images/)")
    parser.add_argument("--model", default=str(default_model_dir("face_verification")))
    parser.add_argument("--enroll", type=int, default=1, help="ORL photos enrolled per person (the rest are probes)")
    args = parser.parse_args()
    face_model = FaceModel(args.model)
    config = face_model.config
    threshold = config.open_set_threshold or config.threshold
    missed = []
    result = {"threshold": threshold}

    people = sorted((p for p in Path(args.orl).iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))
    names, vectors, queries = [], [], []
    for person in people:
        files = sorted(person.glob("*.pgm"), key=lambda p: int(p.stem))
        found = {path: e for path, _, e in embed_files(face_model, files, on_error=lambda p, e: missed.append(str(p)))}
        for number, path in enumerate(files):
            if path in found:
                if number < args.enroll:
                    names.append(person.name)
                    vectors.append(found[path])
                else:
                    queries.append((person.name, found[path]))
    index = GalleryIndex(names, np.stack(vectors))
    rows = identify_all(index, [(t, e) for t, e in queries if t in set(names)], "nearest")
    result["orl"] = {
        "people_enrolled": len(set(names)),
        "photos_enrolled": len(names),
        "probes": len(rows),
        "top1_accuracy": float(np.mean([truth == best for truth, best, _, _ in rows])),
        "identified_within_threshold": float(np.mean([truth == best and d <= threshold for truth, best, d, _ in rows])),
        "strangers_called_unknown": float(np.mean([other > threshold for _, _, _, other in rows])),
        "files_without_a_face": len(missed),
    }

    images = Path(args.coursera) / "images"
    database = [p for p in sorted(images.iterdir()) if not p.stem.startswith("camera_") and p.suffix != ".md"]
    probes = sorted(images.glob("camera_*"))
    enrolled = embed_files(face_model, database, on_error=lambda p, e: missed.append(str(p)))
    index = GalleryIndex([Path(p).stem for p, _, _ in enrolled], np.stack([e for _, _, e in enrolled]))
    answers = {}
    for path, _, embedding in embed_files(face_model, probes, on_error=lambda p, e: missed.append(str(p))):
        name, distance = index.rank(embedding, "nearest", 1)[0]
        answers[Path(path).stem] = {"nearest": name, "distance": round(distance, 3),
                                    "answer": name if distance <= threshold else "unknown",
                                    "truth": COURSERA_PROBES.get(Path(path).stem, "not labelled")}  # fmt: skip
    labelled = [a for stem, a in answers.items() if stem in COURSERA_PROBES]
    result["coursera"] = {
        "enrolled": len(enrolled),
        "probes": answers,
        "labelled_probes_right": sum(a["answer"] == a["truth"] for a in labelled),
        "labelled_probes": len(labelled),
    }
    result["files_without_a_face"] = missed
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
