"""Which input normalisation do the EfficientNet-Lite0 ImageNet weights expect? Measure it, zero-shot.

Usage: python benchmarks/lite0_normalization.py --data ../shared/data/catvnoncat/train_catvnoncat.h5

For each candidate, cat probability = sum of the softmax over the ImageNet cat classes (281-285); we report the
log loss (a proper score: lower is better), the cat / non-cat accuracy at 0.5, ROC AUC and the mean top-1
confidence on the training images (never the test file).
"""

import argparse
import json

import numpy as np
import tensorflow as tf

from dlapps.backbones.efficientnet_lite import build_efficientnet_lite0
from dlapps.data.readers import read_catvnoncat_h5
from dlapps.metrics.classification import binary_classification_metrics
from dlapps.tasks.imagenet import IMAGENET_CAT_CLASSES


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="train_catvnoncat.h5")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    images, labels, _ = read_catvnoncat_h5(args.data)
    resized = tf.image.resize(images, (args.image_size, args.image_size), antialias=True)
    results = {}
    for normalization in ("tf", "imagenet"):
        model = build_efficientnet_lite0(
            (args.image_size, args.image_size, 3), include_top=True, weights="imagenet", normalization=normalization
        )
        probabilities = model.predict(resized, batch_size=32, verbose=0)
        cat = probabilities[:, list(IMAGENET_CAT_CLASSES)].sum(axis=1)
        metrics = binary_classification_metrics(labels, cat)
        clipped = np.clip(cat, 1e-7, 1 - 1e-7)
        log_loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
        results[normalization] = {
            "log_loss": float(log_loss),
            "accuracy": metrics["accuracy"],
            "roc_auc": metrics["roc_auc"],
            "mean_top1_confidence": float(np.mean(probabilities.max(axis=1))),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
