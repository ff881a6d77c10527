"""Image classifiers: the course's ladder of architectures on one interface, plus transfer from pretrained bases.

Every model takes raw 0-255 RGB pixels of a fixed `image_size`; rescaling or the backbone's own normalisation is the
first layer inside the graph. A two-class model ends in one sigmoid unit (the probability of class 1), as the
course's cat classifier does; more classes end in a softmax.
"""

import keras
from keras import layers, regularizers

from dlapps.backbones.small_resnet import conv_bn_relu, residual_block

ARCHITECTURES = ("logreg", "mlp", "cnn", "resnet", "transfer", "imagenet")


def _regularizer(l2):
    return regularizers.L2(l2) if l2 else None


def _head(x, num_classes, dropout, l2, name="predictions"):
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return layers.Dense(units, activation=activation, kernel_regularizer=_regularizer(l2), name=name)(x)


def build_image_classifier(
    architecture,
    image_size=(64, 64),
    num_classes=2,
    hidden_units=(20, 7, 5),
    filters=(16, 32, 64),
    l2=0.0,
    dropout=0.0,
    batch_norm=True,
    weights=None,
    backbone_image_size=None,
    imagenet_veto=None,
    name=None,
):
    """Build a classifier from the course's ladder (or a pretrained transfer model).

    Args:
        architecture: `"logreg"` (logistic regression on pixels), `"mlp"` (L-layer fully connected, He init,
            ReLU), `"cnn"` (conv-BN-ReLU blocks with max-pooling), `"resnet"` (a small residual network),
            `"transfer"` (EfficientNet-Lite0 base + new head) or `"imagenet"` (zero-shot: the ImageNet head
            with cat = sum of the five ImageNet cat classes; needs no training).
        image_size: (height, width) of the input images.
        num_classes: number of classes.
        hidden_units: widths of the hidden layers of `mlp` (the course's 4-layer model is (20, 7, 5)).
        filters: filters per block of `cnn` and per stage of `resnet`.
        l2: L2 weight-decay factor on kernels.
        dropout: dropout rate before the output layer (and after each hidden layer of `mlp`).
        batch_norm: batch normalisation in `mlp`, `cnn` and `resnet`.
        weights: pretrained weights of the base for `transfer`/`imagenet`: `"imagenet"`, `None` or a path.
        backbone_image_size: the size the base sees for `transfer`/`imagenet` (images are upsampled in the graph);
            defaults to `image_size`.
        imagenet_veto: for a two-class `transfer` model, a group of ImageNet classes ("dog") whose probability
            under the backbone's own ImageNet head scales P(class 1) down (`ImageNetVeto`); None: no veto.
        name: model name (defaults to the architecture).

    Example:
        >>> model = build_image_classifier("cnn", image_size=(64, 64))
        >>> model.output_shape
        (None, 1)
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}. Received: architecture={architecture}")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}")
    height, width = image_size
    inputs = keras.Input(shape=(height, width, 3), name="image")

    if architecture in ("transfer", "imagenet"):
        return _build_pretrained(
            inputs, architecture, num_classes, dropout, l2, weights, backbone_image_size, imagenet_veto, name
        )

    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if architecture == "logreg":
        x = layers.Flatten(name="flatten")(x)
        outputs = _head(x, num_classes, dropout, l2)
    elif architecture == "mlp":
        x = layers.Flatten(name="flatten")(x)
        for index, units in enumerate(hidden_units):
            x = layers.Dense(
                units,
                kernel_initializer="he_normal",
                kernel_regularizer=_regularizer(l2),
                use_bias=not batch_norm,
                name=f"dense{index + 1}",
            )(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"dense{index + 1}_bn")(x)
            x = layers.ReLU(name=f"dense{index + 1}_relu")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"dense{index + 1}_dropout")(x)
        outputs = _head(x, num_classes, 0.0, l2)
    elif architecture == "cnn":
        for index, block_filters in enumerate(filters):
            x = conv_bn_relu(x, block_filters, 3, 1, l2, batch_norm, f"block{index + 1}")
            x = layers.MaxPooling2D(2, name=f"block{index + 1}_pool")(x)
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        outputs = _head(x, num_classes, dropout, l2)
    else:  # resnet
        x = conv_bn_relu(x, filters[0], 3, 1, l2, batch_norm, "stem")
        for index, stage_filters in enumerate(filters):
            x = residual_block(x, stage_filters, 1 if index == 0 else 2, l2, batch_norm, f"stage{index + 1}_block1")
            x = residual_block(x, stage_filters, 1, l2, batch_norm, f"stage{index + 1}_block2")
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        outputs = _head(x, num_classes, dropout, l2)
    return keras.Model(inputs, outputs, name=name or architecture)


def _build_pretrained(inputs, architecture, num_classes, dropout, l2, weights, backbone_image_size, veto, name):
    from dlapps.backbones.efficientnet_lite import build_efficientnet_lite0
    from dlapps.tasks.imagenet import CatProbability, ImageNetVeto

    size = tuple(backbone_image_size or inputs.shape[1:3])
    x = inputs
    if size != tuple(inputs.shape[1:3]):
        x = layers.Resizing(*size, interpolation="bilinear", name="backbone_resize")(x)
    if architecture == "imagenet":
        base = build_efficientnet_lite0((*size, 3), include_top=True, weights=weights)
        outputs = CatProbability(name="cat_probability")(base(x))
        return keras.Model(inputs, outputs, name=name or "imagenet_zero_shot")
    if veto:
        if num_classes != 2:
            raise ValueError(f"imagenet_veto needs a two-class model. Received: num_classes={num_classes}")
        # One backbone, two outputs: pooled features for the new head, and its own ImageNet probabilities.
        full = build_efficientnet_lite0((*size, 3), include_top=True, weights=weights)
        base = keras.Model(full.input, [full.get_layer("avg_pool").output, full.output], name=full.name)
        features, imagenet = base(x, training=False)
        outputs = ImageNetVeto(veto, name="imagenet_veto")([_head(features, 2, dropout, l2), imagenet])
        return keras.Model(inputs, outputs, name=name or "transfer")
    base = build_efficientnet_lite0((*size, 3), include_top=False, pooling="avg", weights=weights)
    # Batch norm of the base must keep ImageNet's statistics. training=False alone does not ensure it in Keras 3.15
    # (an outer fit() still updates them); freezing the base (trainable=False, set by the caller) does.
    x = base(x, training=False)
    outputs = _head(x, num_classes, dropout, l2)
    return keras.Model(inputs, outputs, name=name or "transfer")


def find_backbone(model):
    """The nested pretrained base of a transfer model, or None."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    return None
