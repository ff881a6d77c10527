"""Shared fixtures: tiny images and data sets written on the fly, fixed seeds, quiet TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import write_tiny_catvnoncat, write_tiny_image_folder  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_h5(tmp_path):
    """A catvnoncat-style pair of .h5 files with 24 train and 10 test images of 16x16."""
    return write_tiny_catvnoncat(tmp_path / "catvnoncat")


@pytest.fixture
def tiny_folder(tmp_path):
    """An image folder with cat/ and non-cat/ subfolders of small JPEG and PNG files."""
    return write_tiny_image_folder(tmp_path / "images", {"cat": 6, "non-cat": 6})


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """A private Keras cache, so tests never touch (or depend on) the user's ~/.keras."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the offline weight resolvers must never try."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the weights resolver tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
