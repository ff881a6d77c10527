"""Identification against a gallery: nearest enrolled image vs the mean embedding of each person, measured.

For every person of a folder of identities with at least `--min-images` photos (the others are left out), half their
photos are enrolled and the rest are queries. Each query is identified among all enrolled people (closed set: top-1
accuracy, and the share also within the model's threshold), and once more with its own person left out (open set:
the share of strangers correctly called "unknown").

    python benchmarks/faces_identify.py ../shared/data/lfw --min-images 6 --people 150

Prints one JSON object: top-1 accuracy of both rules, and the open-set figures.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from apps.cli import default_model_dir
    from apps.face_verification.app import FaceModel, embed_files
    from models.data.readers import read_image_folder
    from models.gallery import GalleryIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a folder of identities (one subfolder per person)")
    parser.add_argument("--model", default=str(default_model_dir("face_verification")), help="face model folder")
    parser.add_argument("--min-images", type=int, default=6, help="people with at least this many photos take part")
    parser.add_argument("--people", type=int, default=150, help="at most this many people (name order)")
    args = parser.parse_args()

    files, labels, names, _ = read_image_folder(args.data)
    by_person = {}
    for path, label in zip(files, labels, strict=True):
        by_person.setdefault(names[label], []).append(path)
    chosen = [name for name in sorted(by_person) if len(by_person[name]) >= args.min_images][: args.people]
    face_model = FaceModel(args.model)
    gallery_names, gallery_vectors, queries = [], [], []
    for name in chosen:
        found = embed_files(face_model, by_person[name])
        half = max(1, len(found) // 2)
        gallery_names += [name] * half
        gallery_vectors += [e for _, _, e in found[:half]]
        queries += [(name, e) for _, _, e in found[half:]]
    gallery_vectors = np.stack(gallery_vectors)
    threshold = face_model.config.threshold
    result = {"people": len(chosen), "enrolled_images": len(gallery_names), "queries": len(queries)}
    index = GalleryIndex(gallery_names, gallery_vectors)
    for mode in ("nearest", "mean"):
        right = known = unknown = 0
        for name, embedding in queries:
            ranked = index.rank(embedding, mode)
            right += ranked[0][0] == name
            known += ranked[0][0] == name and ranked[0][1] <= threshold
            strangers = [(n, d) for n, d in ranked if n != name]
            unknown += strangers[0][1] > threshold
        result[mode] = {
            "top1_accuracy": right / len(queries),
            "identified_within_threshold": known / len(queries),
            "strangers_called_unknown": unknown / len(queries),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
