"""EfficientNet-Lite0: exact conversion, offline resolver, cache reuse, and a real zero-shot check."""

import numpy as np
import pytest

from dlapps.backbones import efficientnet_lite
from dlapps.backbones.efficientnet_lite import (
    LITE0_CHECKPOINT_SHA256,
    build_efficientnet_lite0,
    converted_weights_path,
    lite0_checkpoint_path,
)
from dlapps.backbones.torch_checkpoint import load_torch_state_dict
from dlapps.data.images import read_image
from dlapps.data.pipelines import resize_images
from dlapps.tasks.imagenet import IMAGENET_CAT_CLASSES
from tests.helpers import EXAMPLES


@pytest.fixture(scope="module")
def state_dict():
    return load_torch_state_dict(lite0_checkpoint_path(), expected_sha256=LITE0_CHECKPOINT_SHA256)


def _torch_conv2d(x, weight, stride, padding, groups=1):
    """A NumPy reference of torch.nn.functional.conv2d on NHWC input (weight in PyTorch's OIHW layout).

    `padding` is ((top, bottom), (left, right)).
    """
    x = np.pad(x, ((0, 0), *padding, (0, 0)))
    out_channels, in_per_group, kh, kw = weight.shape
    height = (x.shape[1] - kh) // stride + 1
    width = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], height, width, out_channels))
    per_group_out = out_channels // groups
    for o in range(out_channels):
        g = o // per_group_out
        patch_channels = slice(g * in_per_group, (g + 1) * in_per_group)
        for i in range(kh):
            for j in range(kw):
                window = x[:, i : i + stride * height : stride, j : j + stride * width : stride, patch_channels]
                out[..., o] += np.tensordot(window, weight[o, :, i, j], axes=([3], [0]))
    return out


def test_stem_conversion_is_exact(keras_home, state_dict):
    model = build_efficientnet_lite0((32, 32, 3), weights="imagenet")
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    keras_out = np.asarray(model.get_layer("stem_conv")(x))
    # TensorFlow's "same" padding for a 3x3 stride-2 conv on 32 pixels: 0 before, 1 after.
    reference = _torch_conv2d(x, state_dict["_conv_stem.weight"], stride=2, padding=((0, 1), (0, 1)))
    np.testing.assert_allclose(keras_out, reference, rtol=1e-4, atol=1e-4)


def test_strided_depthwise_conversion_is_exact(keras_home, state_dict):
    model = build_efficientnet_lite0((32, 32, 3), weights="imagenet")
    # block3a: 5x5 depthwise, stride 2; "same" padding on 8 pixels is 1 before and 2 after.
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 144)).astype(np.float32)
    keras_out = np.asarray(model.get_layer("block3a_dwconv")(x))
    weight = state_dict["_blocks.3._depthwise_conv.weight"]
    reference = _torch_conv2d(x, weight, stride=2, padding=((1, 2), (1, 2)), groups=144)
    np.testing.assert_allclose(keras_out, reference, rtol=1e-4, atol=1e-4)


def test_dense_and_batch_norm_conversion_is_exact(keras_home, state_dict):
    model = build_efficientnet_lite0((32, 32, 3), include_top=True, weights="imagenet")
    features = np.random.default_rng(2).normal(size=(2, 1280)).astype(np.float32)
    reference = features @ state_dict["_fc.weight"].T + state_dict["_fc.bias"]
    logits = features @ model.get_layer("predictions").kernel.numpy() + model.get_layer("predictions").bias.numpy()
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 1280)).astype(np.float32)
    bn = {k: state_dict[f"_bn1.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
    expected = (x - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-3) * bn["weight"] + bn["bias"]
    np.testing.assert_allclose(np.asarray(model.get_layer("top_bn")(x, training=False)), expected, rtol=1e-4, atol=1e-4)


def test_resolver_is_offline_and_caches(keras_home, no_network, monkeypatch):
    assert not converted_weights_path().exists()
    build_efficientnet_lite0((32, 32, 3), weights="imagenet")
    cached = converted_weights_path()
    assert cached.exists() and str(cached).startswith(str(keras_home))

    def fail(*args, **kwargs):
        raise AssertionError("converted again instead of using the cache")

    monkeypatch.setattr(efficientnet_lite, "convert_lite0_checkpoint", fail)
    build_efficientnet_lite0((32, 32, 3), weights="imagenet")


def test_example_cat_lands_in_imagenet_cat_classes(keras_home, no_network):
    model = build_efficientnet_lite0((224, 224, 3), include_top=True, weights="imagenet")
    image = resize_images(read_image(EXAMPLES / "chelsea.png"), (224, 224))[None]
    probabilities = np.asarray(model(image))[0]
    assert int(np.argmax(probabilities)) in IMAGENET_CAT_CLASSES
    assert probabilities[list(IMAGENET_CAT_CLASSES)].sum() > 0.9
    coffee = resize_images(read_image(EXAMPLES / "coffee.png"), (224, 224))[None]
    assert int(np.argmax(np.asarray(model(coffee))[0])) == 967  # espresso
