"""Is the input pipeline the bottleneck? Images/s of the training tf.data pipeline alone vs of training steps.

Usage:
  python benchmarks/pipeline_speed.py --data ../shared/data/catvnoncat --model cnn
  python benchmarks/pipeline_speed.py --data ../shared/data/alpaca --model transfer --image-size 160

Reports: first epoch (decodes, fills the cache) and second epoch (from the cache) of the pipeline alone, with
augmentation; then training steps per second on the same pipeline. The pipeline must be much faster than training.
"""

import argparse
import json
import time

import keras
import numpy as np

from dlapps.data.pipelines import build_augmentation, finalize_dataset, make_array_dataset, make_file_dataset
from dlapps.data.readers import find_catvnoncat_pair, read_catvnoncat_h5, read_image_folder
from dlapps.tasks.image_classifier import build_image_classifier


def _images_per_second(dataset):
    start, count = time.perf_counter(), 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start), count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=None, help="for transfer: imagenet, or none (default: random)")
    args = parser.parse_args()
    size = (args.image_size, args.image_size)
    train_file, _ = find_catvnoncat_pair(args.data)
    if train_file is not None:
        images, labels, class_names = read_catvnoncat_h5(train_file)
        base = make_array_dataset(images, labels, size)
    else:
        files, labels, class_names, _ = read_image_folder(args.data)
        base = make_file_dataset(files, labels, size)
    augmentation = build_augmentation(size, seed=0)
    dataset = finalize_dataset(base, args.batch_size, True, augmentation, seed=0)
    first, count = _images_per_second(dataset)
    second, _ = _images_per_second(dataset)

    model = build_image_classifier(args.model, size, num_classes=len(class_names), weights=args.weights)
    loss = "binary_crossentropy" if len(class_names) == 2 else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(dataset, epochs=1, verbose=0)  # Warm-up epoch: tracing.
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    train = count / (time.perf_counter() - start)
    print(
        json.dumps(
            {
                "data": args.data,
                "model": args.model,
                "images": count,
                "pipeline_first_epoch_images_per_s": round(first, 1),
                "pipeline_cached_epoch_images_per_s": round(second, 1),
                "training_images_per_s": round(train, 1),
                "pipeline_to_training_ratio": round(second / train, 1) if train else float(np.nan),
            }
        )
    )


if __name__ == "__main__":
    main()
