import numpy as np
import pytest

from dlapps.losses.style import content_loss, gram_matrix, style_loss, total_variation_loss


def test_gram_matrix_on_a_hand_made_feature_map():
    # Two positions (1 x 2), two channels: F = [[1, 2], [3, 4]] (rows: positions).
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    # F^T F = [[1 + 9, 2 + 12], [2 + 12, 4 + 16]] = [[10, 14], [14, 20]], divided by 2 positions.
    np.testing.assert_allclose(np.asarray(gram_matrix(features))[0], [[5.0, 7.0], [7.0, 10.0]])


def test_content_style_and_total_variation_losses_are_exact():
    a = np.zeros((1, 1, 2, 2), np.float32)
    b = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    assert float(content_loss(a, b)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    # Gram of b is [[5, 7], [7, 10]]; against a zero Gram: mean of squares = (25 + 49 + 49 + 100) / 4.
    assert float(style_loss(np.zeros((1, 2, 2), np.float32), b)) == pytest.approx(223 / 4)
    image = np.array([[[[0.0], [1.0]], [[3.0], [5.0]]]], np.float32)  # 2 x 2, one channel
    # Vertical: |3 - 0| + |5 - 1| = 7; horizontal: |1 - 0| + |5 - 3| = 3.
    assert float(total_variation_loss(image)) == pytest.approx(10.0)


def test_hed_vgg16_reader_refuses_an_unexpected_layout(tmp_path):
    import h5py

    from dlapps.backbones.vgg import read_hed_vgg16

    with h5py.File(tmp_path / "wrong.h5", "w") as file:
        file["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), np.float32)
        file["block1/layers/conv2d/vars/1"] = np.zeros((32,), np.float32)
    with pytest.raises(ValueError, match="expected"):
        read_hed_vgg16(tmp_path / "wrong.h5")


def test_packaged_hed_weights_match_the_vgg16_layers():
    from dlapps.backbones.vgg import build_vgg16_features

    model = build_vgg16_features(["block1_conv1", "block5_conv1"], weights="hed")
    outputs = model(np.full((1, 32, 32, 3), 128.0, np.float32))
    assert outputs["block1_conv1"].shape == (1, 32, 32, 64) and outputs["block5_conv1"].shape == (1, 2, 2, 512)
    # An edge-free grey image gives a flat block1 response (edge filters see nothing inside the image).
    inner = np.asarray(outputs["block1_conv1"])[0, 4:-4, 4:-4]
    assert np.allclose(inner, inner[0, 0], atol=1e-4)


def test_instance_normalisation_matches_its_formula():
    from dlapps.tasks.style_transformer import instance_norm

    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 4, 3)).astype(np.float32)
    layer = instance_norm("in")
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-4)


def test_stylise_keeps_any_size_and_blends_by_strength():
    from dlapps.tasks.style_transformer import build_style_transformer, stylise

    model = build_style_transformer((4, 8, 8), 1)
    images = np.random.default_rng(1).integers(0, 256, (1, 13, 22, 3), dtype=np.uint8)
    styled = stylise(model, images).numpy()
    assert styled.shape == images.shape and styled.dtype == np.uint8
    np.testing.assert_array_equal(stylise(model, images, 0.0).numpy(), images)


def test_vgg_imagenet_offline_is_a_clear_error(monkeypatch):
    import keras
    import pytest

    from dlapps.backbones.applications import OfflineWeightsError
    from dlapps.backbones.vgg import build_vgg16_features

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(OfflineWeightsError, match="--weights hed"):
        build_vgg16_features(["block1_conv1"], "imagenet")


def test_optimise_style_lowers_the_cost_with_both_optimisers_and_records_every_step():
    import keras
    import tensorflow as tf

    from dlapps.tasks.neural_style import optimise_style, style_grams

    # A tiny fixed loss network (two conv layers, seeded): the optimisation, not VGG, is under test.
    inputs = keras.Input((None, None, 3))
    first = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inputs / 255.0)
    second = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(first)
    keras.utils.set_random_seed(0)
    network = keras.Model(inputs, {"a": first, "b": second})
    rng = np.random.default_rng(0)
    content = tf.constant(rng.uniform(size=(1, 16, 16, 3)), tf.float32)
    style = tf.constant(rng.uniform(size=(1, 20, 20, 3)) ** 3, tf.float32)
    grams = style_grams(network, [style], [1.0], ["a", "b"])
    for optimizer in ("adam", "lbfgs"):
        seen = []
        image, history = optimise_style(
            content, grams, network, "b", ["a", "b"], [1.0, 1.0], 1.0, 1e3, 0.0, 8, optimizer,
            on_step=lambda step, image, losses, seen=seen: seen.append(step),
        )  # fmt: skip
        assert image.shape == (1, 16, 16, 3) and 0.0 <= image.min() and image.max() <= 1.0
        assert history[0]["content"] == pytest.approx(0.0, abs=1e-9)  # step 0 is the photo itself
        assert history[-1]["total"] < history[0]["total"]
        assert seen == list(range(len(history)))
        if optimizer == "adam":
            assert len(history) == 9  # the start, then each of the 8 updates
            # The warmed-up rate: the total falls from the first step (at full rate it rose first).
            totals = [row["total"] for row in history]
            assert all(b <= a for a, b in zip(totals, totals[1:])), totals
    with pytest.raises(ValueError, match="1 style layer weights for 2 style layers"):
        optimise_style(content, grams, network, "b", ["a", "b"], [1.0])


def test_style_weights_are_relative():
    import keras
    import tensorflow as tf

    from dlapps.tasks.neural_style import style_grams

    inputs = keras.Input((None, None, 3))
    network = keras.Model(inputs, {"a": keras.layers.Conv2D(2, 1, name="a")(inputs)})
    rng = np.random.default_rng(1)
    first, second = (tf.constant(rng.uniform(size=(1, 8, 8, 3)), tf.float32) for _ in range(2))
    mixed = style_grams(network, [first, second], [7.0, 3.0], ["a"])["a"]
    np.testing.assert_allclose(mixed, style_grams(network, [first, second], [0.7, 0.3], ["a"])["a"], rtol=1e-6)
    alone = style_grams(network, [first], [1.0], ["a"])["a"]
    np.testing.assert_allclose(style_grams(network, [first], [2.0], ["a"])["a"], alone, rtol=1e-6)
