"""Face embedders: a face chip in, an L2-normalised 128-D embedding out (the course's f(x) of the face week).

Backbones: dlib's face-recognition ResNet (pretrained with a metric loss, offline weights from the
`face-recognition-models` package), EfficientNet-Lite0 (ImageNet weights, offline) with a new 128-unit projection,
or the compact `small_resnet` from scratch. On unit vectors, squared distance = 2 - 2 cos, so the triplet margin and
the verification threshold are on a fixed scale (0 to 2 in distance) whatever the backbone.
"""

import hashlib

import keras
from keras import layers

FACE_BACKBONES = ("dlib", "efficientnet_lite0", "small_resnet")
CHIP_SIZE = 150
EMBEDDING_SIZE = 128


def build_face_embedder(backbone="dlib", weights="dlib", embedding_size=EMBEDDING_SIZE, name="face_embedder"):
    """An embedding model taking (N, 150, 150, 3) float32 0-255 RGB aligned chips, returning (N, d) unit vectors.

    Args:
        backbone: one of `FACE_BACKBONES`.
        weights: for "dlib": "dlib" (packaged), a `.dat`/`.npz` path, or "none"; for "efficientnet_lite0":
            "imagenet", "none" or a path; "small_resnet" always starts from random weights.
        embedding_size: size of the projection of a backbone without one (dlib's is 128 already).

    Raises:
        ValueError: an unknown backbone, or weights that cannot be found (see each backbone's builder).
    """
    if backbone not in FACE_BACKBONES:
        raise ValueError(f"backbone must be one of {FACE_BACKBONES}. Received: backbone={backbone}")
    weights = None if weights in (None, "none", "None") else weights
    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="chip")
    if backbone == "dlib":
        from models.backbones.dlib_resnet import build_dlib_face_resnet

        x = build_dlib_face_resnet(weights=weights)(inputs)
    else:
        from models.backbones.applications import build_backbone

        base = build_backbone(backbone, (CHIP_SIZE, CHIP_SIZE), weights or "none")
        x = layers.Dense(embedding_size, name="projection")(base(inputs))
    outputs = layers.UnitNormalization(name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def model_identity(model):
    """A short identity of a model's weights ("sha256:<12 hex>"): galleries refuse embeddings of another model."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(keras.ops.convert_to_numpy(weight).tobytes())
    return f"sha256:{digest.hexdigest()[:12]}"
