"""Pretrained backbones by name: EfficientNet-Lite0 (offline ImageNet weights) and keras.applications models.

Every backbone here takes raw 0-255 RGB pixels: the normalisation each family expects is its first layer.
Weights: "imagenet", "none" or a path. Keras downloads the ImageNet files of keras.applications models on first
use; with no network and no cached file, `build_backbone` fails within seconds with one clear line.
"""

import socket
from pathlib import Path

import keras
from keras import layers, ops

from dlapps.backbones import BACKBONES
from dlapps.backbones.efficientnet_lite import build_efficientnet_lite0

DOWNLOAD_TIMEOUT_SECONDS = 10


@keras.saving.register_keras_serializable(package="dlapps")
class CaffePreprocessing(layers.Layer):
    """RGB 0-255 to the BGR, ImageNet-mean-centred pixels that Keras' ResNet50 weights expect."""

    def call(self, images):
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=bgr.dtype)


class OfflineWeightsError(ValueError):
    """ImageNet weights could not be downloaded and are not cached."""


def _keras_application(name, input_shape, weights):
    apps = keras.applications
    if name == "mobilenet_v2":
        return apps.MobileNetV2(input_shape=input_shape, include_top=False, weights=weights, pooling="avg"), "tf"
    if name == "mobilenet_v3_small":
        return apps.MobileNetV3Small(input_shape=input_shape, include_top=False, weights=weights, pooling="avg"), None
    if name == "mobilenet_v3_large":
        return apps.MobileNetV3Large(input_shape=input_shape, include_top=False, weights=weights, pooling="avg"), None
    if name == "efficientnet_v2_b0":
        return apps.EfficientNetV2B0(input_shape=input_shape, include_top=False, weights=weights, pooling="avg"), None
    if name == "resnet50":
        return apps.ResNet50(input_shape=input_shape, include_top=False, weights=weights, pooling="avg"), "caffe"
    raise ValueError(f"backbone must be one of {BACKBONES}. Received: backbone={name}")


def build_backbone(name, image_size, weights="imagenet"):
    """A pooled feature extractor taking (H, W, 3) 0-255 pixels, with its normalisation inside.

    Args:
        name: one of `BACKBONES`.
        image_size: (height, width).
        weights: "imagenet", "none"/None, or a path to a weights file.

    Raises:
        OfflineWeightsError: "imagenet" weights of a keras.applications model could not be downloaded.
    """
    input_shape = (*image_size, 3)
    path = None if weights in (None, "none", "imagenet") else Path(weights)
    if path is not None and not path.exists():
        raise ValueError(f"--weights: no such file {path} (use 'imagenet', 'none' or a weights file)")
    if name == "efficientnet_lite0":
        return build_efficientnet_lite0(input_shape, weights=None if weights == "none" else weights)
    if name == "small_resnet":
        if weights == "imagenet":
            raise ValueError("small_resnet has no ImageNet weights: it is the from-scratch recipe (--weights none)")
        from dlapps.backbones.small_resnet import build_small_resnet

        base = build_small_resnet(input_shape)
        if path is not None:
            base.load_weights(path)
        return base
    keras_weights = "imagenet" if weights == "imagenet" else None
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        base, preprocessing = _keras_application(name, input_shape, keras_weights)
    except Exception as error:  # Keras raises a bare Exception when the download fails.
        if keras_weights is None or "URL fetch failure" not in str(error) and "download" not in str(error).lower():
            raise
        raise OfflineWeightsError(
            f"could not download the ImageNet weights of {name} (no network, and not in ~/.keras/models). "
            "Use --weights none (train from scratch), --weights PATH (a local weights file), "
            "or --backbone efficientnet_lite0 (ImageNet weights offline)."
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    if path is not None:
        base.load_weights(path)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if preprocessing == "tf":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="tf_normalization")(x)
    elif preprocessing == "caffe":
        x = CaffePreprocessing(name="caffe_normalization")(x)
    return keras.Model(inputs, base(x), name=name)


def build_feature_pyramid(name, image_size, weights="imagenet", strides=(8, 16, 32)):
    """A backbone that returns one feature map per stride (for detection), named "backbone".

    Takes (H, W, 3) 0-255 pixels (normalisation inside, as `build_backbone`); returns a list of (H/s, W/s, C_s)
    maps, each the output of the backbone's last layer at that stride. Raises as `build_backbone`.
    """
    pooled = build_backbone(name, image_size, weights)
    nested = [layer for layer in pooled.layers if isinstance(layer, keras.Model)]
    network = nested[0] if nested else pooled
    height = image_size[0]
    by_stride = {}
    for layer in network.layers:
        shape = getattr(layer, "output", None) is not None and layer.output.shape
        if shape and len(shape) == 4 and shape[1]:
            by_stride[height // shape[1]] = layer.output
    missing = [stride for stride in strides if stride not in by_stride]
    if missing:
        raise ValueError(f"{name}: no feature map at stride {missing} for image size {image_size}")
    features = keras.Model(network.input, [by_stride[stride] for stride in strides], name=f"{name}_features")
    if network is pooled:
        features.name = "backbone"
        return features
    inputs = keras.Input((*image_size, 3), name="image")
    x = inputs
    for layer in pooled.layers[1:]:
        x = features(x) if layer is network else layer(x)
    return keras.Model(inputs, x, name="backbone")
