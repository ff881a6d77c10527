"""Export a classifier for deployment: a SavedModel with `serve` and `serve_bytes` endpoints, and TFLite files.

The SavedModel takes raw pixels: `serve` accepts uint8 RGB images of any size (one batch, one size), `serve_bytes`
accepts encoded JPEG/PNG/BMP/GIF bytes. Both resize in the graph exactly as training and `predict` do, and return the
post-processing a deployed model needs: probabilities per class, the predicted class index and its name.
"""

import json
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlapps.data.images import ImageReadError, decode_image_bytes, read_image
from dlapps.data.pipelines import resize_images
from dlapps.quiet import quiet_native_stderr


def _postprocess(outputs, class_names, threshold):
    """Model outputs to {probabilities (N, C), class_index (N,), label (N,)}."""
    names = tf.constant(list(class_names))
    if outputs.shape[-1] == 1:
        positive = outputs[:, 0]
        probabilities = tf.stack([1.0 - positive, positive], axis=-1)
        class_index = tf.cast(positive >= threshold, tf.int32)
    else:
        probabilities = outputs
        class_index = tf.argmax(outputs, axis=-1, output_type=tf.int32)
    return {"probabilities": probabilities, "class_index": class_index, "label": tf.gather(names, class_index)}


def _decode_and_resize(image_bytes, image_size):
    image = decode_image_bytes(image_bytes)
    image.set_shape((None, None, 3))
    return resize_images(image, image_size)


def export_saved_model(model, path, class_names, threshold=0.5):
    """Write a SavedModel with `serve` (uint8 images) and `serve_bytes` (encoded images) endpoints.

    Args:
        model: a Keras classifier taking (N, H, W, 3) 0-255 pixels.
        path: output folder.
        class_names: names in class-index order.
        threshold: decision threshold on P(class 1) for a one-unit sigmoid model.

    Returns:
        The path written.
    """
    image_size = tuple(model.input_shape[1:3])
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images):
        return _postprocess(model(resize_images(images, image_size), training=False), class_names, threshold)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(
            lambda b: _decode_and_resize(b, image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec((*image_size, 3), tf.float32),
        )
        return _postprocess(model(images, training=False), class_names, threshold)

    archive.add_endpoint("serve", serve)
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.write_out(str(path), verbose=False)
    # Beside the graph, where TF Serving keeps extra files: the names a reader can check without running it.
    (Path(path) / "assets.extra").mkdir(exist_ok=True)
    (Path(path) / "assets.extra" / "class_names.json").write_text(json.dumps(list(class_names)) + "\n")
    return Path(path)


def exported_class_names(path):
    """The class names an export carries: `assets.extra/class_names.json` of a SavedModel folder, or the
    `<file>.json` written beside a TFLite or ONNX file. None when the export does not say (older exports).

    Raises FileNotFoundError for a path that does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such exported model: {path}")
    info = path / "assets.extra" / "class_names.json" if path.is_dir() else Path(f"{path}.json")
    if not info.exists():
        return None
    names = json.loads(info.read_text())
    return list(names["class_names"] if isinstance(names, dict) else names)


def export_tflite(model, path, quantization="float", representative_images=None):
    """Write a TFLite file taking (1, H, W, 3) float32 0-255 pixels (already resized) and returning the outputs.

    Args:
        model: the Keras classifier.
        path: the `.tflite` file to write.
        quantization: `"float"` (float32) or `"int8"` (full-integer weights and activations, float input/output).
        representative_images: for `"int8"`, an array of (N, H, W, 3) training images used to calibrate ranges.
    """
    if quantization not in ("float", "int8"):
        raise ValueError(f"quantization must be 'float' or 'int8'. Received: quantization={quantization}")
    image_size = tuple(model.input_shape[1:3])
    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((1, *image_size, 3), tf.float32, name="images")],
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantization == "int8":
            if representative_images is None or len(representative_images) == 0:
                raise ValueError("int8 quantization needs representative images from the training data.")
            images = np.asarray(representative_images, dtype=np.float32)

            def representative_dataset():
                for image in images:
                    yield [image[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with quiet_native_stderr():
            content = converter.convert()
    Path(path).write_bytes(content)
    return Path(path)


def calibration_images(files, image_size, count=100, seed=0):
    """Up to `count` images drawn (seeded) from `files`, resized as in training, for int8 calibration.

    Args:
        files: image paths (training pictures: calibration must not see dev or test images).
        image_size: (height, width) of the model input.
        count: how many files to draw.
        seed: the draw's seed.

    Returns:
        (images, unreadable): a float32 (N, H, W, 3) array of 0-255 pixels, and the `ImageReadError`s of the drawn
        files that could not be read (skipped, so N may be below `count`, or 0: `export_tflite` then refuses).
    """
    images, unreadable = [], []
    for index in np.random.default_rng(seed).permutation(len(files))[:count]:
        try:
            images.append(np.asarray(resize_images(read_image(files[index]), image_size)))
        except ImageReadError as error:
            unreadable.append(error)
    return np.asarray(images, np.float32).reshape(-1, *image_size, 3), unreadable


class TFLiteClassifier:
    """Run a TFLite classifier file on batches of resized 0-255 images, one image per invoke."""

    def __init__(self, path, num_threads=None):
        with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate" comes from C++.
            self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, images):
        outputs = []
        with quiet_native_stderr():
            for image in np.asarray(images, dtype=np.float32):
                self.interpreter.set_tensor(self.input["index"], image[None])
                self.interpreter.invoke()
                outputs.append(self.interpreter.get_tensor(self.output["index"])[0])
        return np.stack(outputs)


def export_onnx(model, path, opset=17):
    """Write an ONNX file (through tf2onnx) taking (N, H, W, 3) float32 0-255 resized pixels.

    Raises:
        ValueError: tf2onnx is not installed.
    """
    try:
        import tf2onnx
    except ImportError:
        raise ValueError("ONNX export needs tf2onnx: pip install tf2onnx onnxruntime") from None
    image_size = tuple(model.input_shape[1:3])
    function = tf.function(lambda images: model(images, training=False))
    signature = (tf.TensorSpec((None, *image_size, 3), tf.float32, name="images"),)
    tf2onnx.convert.from_function(function, input_signature=signature, opset=opset, output_path=str(path))
    return Path(path)


class OnnxClassifier:
    """Run an ONNX classifier (from `export_onnx`) with ONNX Runtime on resized 0-255 images."""

    def __init__(self, path):
        try:
            import onnxruntime
        except ImportError:
            raise ValueError("running ONNX files needs onnxruntime: pip install onnxruntime") from None
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images):
        return self.session.run(None, {self.input_name: np.asarray(images, dtype=np.float32)})[0]


def exported_probabilities(path, files, image_size, on_skip=None):
    """An exported classifier's answers on image files, each as a user would call it: a SavedModel through its
    `serve_bytes` (it decodes inside its graph), a TFLite or ONNX file on pixels decoded and resized by
    `dlapps.data.images.read_image` and `dlapps.data.pipelines.resize_images` (what they take, `write_model_info`).

    Args:
        path: a SavedModel folder, a `.tflite` or an `.onnx` file.
        files: image paths.
        image_size: (height, width) in pixels of the model's input.
        on_skip: called as on_skip(file) for each file a SavedModel's graph cannot decode (TIFF, PPM, ...).
    Returns:
        (float32 (n, C) class probabilities of the files used, bool (len(files),) mask of the files used).
    Raises:
        ValueError: `path` is none of the three.
    """
    from dlapps.data.images import is_graph_decodable, read_image
    from dlapps.data.pipelines import resize_images
    from dlapps.inference import as_class_probabilities

    path = Path(path)
    if (path / "saved_model.pb").exists():
        served = tf.saved_model.load(str(path))
        used = np.array([is_graph_decodable(f) for f in files], dtype=bool)
        for file in np.asarray(files, dtype=object)[~used]:
            if on_skip:
                on_skip(file)
        probabilities = [
            served.serve_bytes(tf.constant([Path(f).read_bytes()]))["probabilities"].numpy()
            for f, ok in zip(files, used, strict=True)
            if ok
        ]
        return (np.concatenate(probabilities) if probabilities else np.zeros((0, 0))), used
    if path.suffix in (".tflite", ".onnx"):
        runner = TFLiteClassifier(path) if path.suffix == ".tflite" else OnnxClassifier(path)
        probabilities = [runner(np.asarray(resize_images(read_image(f), image_size))[None]) for f in files]
        return as_class_probabilities(np.concatenate(probabilities)), np.ones(len(files), dtype=bool)
    raise ValueError(f"--exported: expected a SavedModel folder, a .tflite or an .onnx file. Received: {path}")


def write_model_info(path, model, class_names, quantization="float"):
    """Describe a TFLite or ONNX file beside it (`<file>.json`): the input it takes and its class names.

    TFLite and ONNX files take already-resized float32 pixels, not raw images; this says so, for whoever deploys
    them. ONNX files also carry the same facts in their metadata (`metadata_props`).
    """
    height, width = (int(v) for v in model.input_shape[1:3])
    info = {
        "input": {
            "name": "images",
            "shape": [1 if Path(path).suffix == ".tflite" else None, height, width, 3],
            "dtype": "float32",
            "pixels": f"RGB, 0-255 (not rescaled), already resized to {height}x{width} (bilinear, antialiased)",
        },
        "output": "probability of class 1 (one sigmoid unit)" if model.output_shape[-1] == 1 else "class probabilities",
        "class_names": list(class_names),
        "quantization": quantization,
    }
    Path(f"{path}.json").write_text(json.dumps(info, indent=2) + "\n")
    if Path(path).suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path))
        for key, value in (("class_names", json.dumps(list(class_names))), ("input", json.dumps(info["input"]))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
    return info


def path_size(path):
    """Bytes of an exported file, or of all files in an exported folder (a SavedModel)."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def export_graph(module, serve, serve_bytes, path, fmt, info, select_tf_ops=False):
    """Export a tf.Module's serving functions (the detector's and the style model's one rule, letterbox or padding
    and post-processing inside) as a SavedModel, TFLite or ONNX file.

    Args:
        module: a tf.Module whose `model` attribute is the Keras model (the variables to export).
        serve: a tf.function with an input signature (uint8 images), the "serve" endpoint (and TFLite/ONNX graph).
        serve_bytes: a tf.function taking (N,) encoded image strings; SavedModel only.
        path: the SavedModel folder or the .tflite/.onnx file.
        fmt: "saved_model", "tflite" or "onnx".
        info: what the export takes and returns; written as `assets/model_info.json` or `<file>.json`.
        select_tf_ops: let TFLite fall back to TensorFlow ops (Flex) for ops it lacks (e.g. combined NMS).
    """
    path = Path(path)
    if fmt == "saved_model":
        signatures = {"serving_default": serve.get_concrete_function(), "serve": serve.get_concrete_function()}
        if serve_bytes is not None:
            signatures["serve_bytes"] = serve_bytes.get_concrete_function()
        tf.saved_model.save(module, str(path), signatures=signatures)
        (path / "assets").mkdir(exist_ok=True)
        (path / "assets" / "model_info.json").write_text(json.dumps(info, indent=2))
    elif fmt == "tflite":
        # Through a Keras ExportArchive tracking module.model: converting the concrete function (or a tf.Module's
        # SavedModel) leaves the Keras weights as uninitialised variables in TFLite (NaN outputs, seen on the face
        # model); the archive's SavedModel converts with them frozen.
        folder = tempfile.mkdtemp()
        archive = keras.export.ExportArchive()
        archive.track(module.model)
        archive.add_endpoint(
            "serving_default", lambda *inputs: serve(*inputs), input_signature=list(serve.input_signature)
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        try:
            with quiet_native_stderr():
                path.write_bytes(converter.convert())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        Path(f"{path}.json").write_text(json.dumps({**info, "select_tf_ops": select_tf_ops}, indent=2))
    elif fmt == "onnx":
        import tf2onnx

        with quiet_native_stderr():
            tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17, output_path=str(path))
        Path(f"{path}.json").write_text(json.dumps(info, indent=2))
    else:
        raise ValueError(f"format must be saved_model, tflite or onnx. Received: {fmt}")
    return path
