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
    from dlapps.apps.face_verification.app import FaceModel, embed_files
    from dlapps.cli.common import default_model_dir
    from dlapps.data.readers import read_image_folder
    from dlapps.gallery import GalleryIndex

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
    config = face_model.config
    thresholds = {"pair_threshold": config.threshold, "open_set_threshold": config.open_set_threshold}
    result = {"people": len(chosen), "enrolled_images": len(gallery_names), "queries": len(queries), **thresholds}
    index = GalleryIndex(gallery_names, gallery_vectors)
    for mode in ("nearest", "mean"):
        ranked = [(name, index.rank(embedding, mode)) for name, embedding in queries]
        result[mode] = {"top1_accuracy": float(np.mean([people[0][0] == name for name, people in ranked]))}
        for key, threshold in thresholds.items():
            if threshold is None:
                continue
            known = [people[0][0] == name and people[0][1] <= threshold for name, people in ranked]
            # The same query as a stranger: its own person left out of the gallery.
            strangers = [[d for n, d in people if n != name][0] > threshold for name, people in ranked]
            result[mode][key] = {"identified_within_threshold": float(np.mean(known)),
                                 "strangers_called_unknown": float(np.mean(strangers))}  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
