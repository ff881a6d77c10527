import numpy as np
import tensorflow as tf
from PIL import Image

from dlapps.data.pipelines import resize_images
from dlapps.export import TFLiteClassifier, export_saved_model, export_tflite
from dlapps.tasks.image_classifier import build_image_classifier
from tests.helpers import assert_serving_matches


def _images(count, height=30, width=20):
    return np.random.default_rng(0).integers(0, 255, (count, height, width, 3), dtype=np.uint8)


def test_saved_model_serves_raw_images_and_bytes(tmp_path):
    model = build_image_classifier("cnn", image_size=(16, 16), filters=(4, 8))
    images = _images(3)
    positive = np.asarray(model(resize_images(images, (16, 16))))[:, 0]
    expected = np.stack([1 - positive, positive], axis=1)
    export_saved_model(model, tmp_path / "serving", ["non-cat", "cat"], threshold=0.5)
    served = assert_serving_matches(model, tmp_path / "serving", images, expected)

    outputs = served.serve(tf.constant(images))
    assert outputs["label"].numpy().tolist() == [b"cat" if p >= 0.5 else b"non-cat" for p in positive]

    encoded = []
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
        encoded.append((tmp_path / f"{index}.png").read_bytes())
    from_bytes = served.serve_bytes(tf.constant(encoded))
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_multiclass_serving_and_tflite(tmp_path):
    model = build_image_classifier("cnn", image_size=(16, 16), num_classes=3, filters=(4,))
    images = _images(2, 16, 16)
    expected = np.asarray(model(images.astype(np.float32)))
    export_saved_model(model, tmp_path / "serving", ["a", "b", "c"])
    assert_serving_matches(model, tmp_path / "serving", images, expected)
    export_tflite(model, tmp_path / "model.tflite")
    np.testing.assert_allclose(TFLiteClassifier(tmp_path / "model.tflite")(images), expected, atol=1e-5)


def test_serve_bytes_answers_as_predict_on_phone_photos_alpha_and_16_bit(tmp_path):
    from dlapps.data.images import read_image
    from tests.models.test_images import _write_png16_rgb

    model = build_image_classifier("cnn", image_size=(16, 16), num_classes=3, filters=(4,))
    pixels = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif)
    rgba = np.dstack([pixels, np.where(np.arange(30) < 15, 0, 255).astype(np.uint8)[None].repeat(20, 0)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    _write_png16_rgb(tmp_path / "deep.png", pixels.astype(np.uint16) * 257 + 1)
    files = [tmp_path / name for name in ("phone.jpg", "alpha.png", "deep.png")]
    expected = np.concatenate([np.asarray(model(resize_images(read_image(f), (16, 16))[None])) for f in files])
    export_saved_model(model, tmp_path / "serving", ["a", "b", "c"])
    served = tf.saved_model.load(str(tmp_path / "serving"))
    outputs = served.serve_bytes(tf.constant([f.read_bytes() for f in files]))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
