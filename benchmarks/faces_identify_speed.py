"""Identification speed against a big gallery: one query among 100,000 enrolled embeddings.

Builds a SQLite gallery (`dlapps.gallery.Gallery`) of random unit embeddings (10,000 people x 10 images by default),
then times, on this machine: reading the gallery and building the index (once per `identify` run) and the lookup of
one query embedding (per face; the goal: under 10 ms). The embedding network's own time (about 30 ms a face for dlib's
ResNet on 2 cores) is not part of the lookup.

    python benchmarks/faces_identify_speed.py --output runs/faces_identify_speed
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_ms  # noqa: E402
from dlapps.gallery import Gallery, GalleryIndex  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--images-per-person", type=int, default=10)
    parser.add_argument("--output", required=True, help="a folder for the gallery file and speed.json")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    db = output / "gallery.db"
    db.unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    gallery = Gallery(db, "sha256:benchmark000", 128)
    start = time.perf_counter()
    for person in range(args.people):
        vectors = rng.normal(size=(args.images_per_person, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        gallery.enroll(f"person_{person:06d}", vectors, [f"img_{person}_{i}.jpg" for i in range(len(vectors))])
    enroll_seconds = time.perf_counter() - start
    gallery.close()

    def load():
        opened = Gallery(db, "sha256:benchmark000", 128)
        names, vectors = opened.embeddings()
        opened.close()
        return GalleryIndex(names, vectors)

    load_ms = median_ms(load, 3)
    index = load()
    query = rng.normal(size=128).astype(np.float32)
    query /= np.linalg.norm(query)
    result = {
        "embeddings": len(index.vectors),
        "people": len(index.people),
        "enroll_all_seconds": round(enroll_seconds, 1),
        "load_and_index_ms": round(load_ms, 1),
        "lookup_nearest_ms": round(median_ms(lambda: index.rank(query, "nearest", 5), 50, warmup=3), 2),
        "lookup_mean_ms": round(median_ms(lambda: index.rank(query, "mean", 5), 50, warmup=3), 2),
        "gallery_mb": round(db.stat().st_size / 1e6, 1),
    }
    (output / "speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
