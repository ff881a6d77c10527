import h5py
import numpy as np
import pytest
import tensorflow as tf

from dlapps.data.pipelines import finalize_dataset, make_file_dataset, resize_images
from dlapps.data.readers import DataError, read_catvnoncat_h5, read_image_folder, stratified_split
from tests.helpers import write_bad_files


def test_read_catvnoncat_h5(tiny_h5):
    images, labels, class_names = read_catvnoncat_h5(tiny_h5 / "train_catvnoncat.h5")
    assert images.shape == (24, 16, 16, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 1] * 12
    assert class_names == ["non-cat", "cat"]


def test_h5_without_expected_keys(tmp_path):
    with h5py.File(tmp_path / "wrong.h5", "w") as file:
        file["pixels"] = np.zeros((2, 4, 4, 3))
    with pytest.raises(DataError, match="expected one '\\*_set_x'"):
        read_catvnoncat_h5(tmp_path / "wrong.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        read_catvnoncat_h5(tmp_path / "text.h5")


def test_stratified_split_is_seeded_and_keeps_balance():
    labels = np.array([0] * 30 + [1] * 10)
    train, dev = stratified_split(labels, (0.2,), seed=3)
    again = stratified_split(labels, (0.2,), seed=3)
    assert train.tolist() == again[0].tolist()
    assert sorted(train.tolist() + dev.tolist()) == list(range(40))
    assert np.bincount(labels[dev]).tolist() == [6, 2]


def test_image_folder_skips_non_images_and_reads_nested(tiny_folder):
    (tiny_folder / "cat" / "notes.txt").write_text("hello")
    (tiny_folder / "cat" / "deeper").mkdir()
    (tiny_folder / "cat" / "cat_0.png").rename(tiny_folder / "cat" / "deeper" / "cat_0.png")
    files, labels, class_names, skipped = read_image_folder(tiny_folder)
    assert class_names == ["cat", "non-cat"]
    assert len(files) == 12 and labels.count(0) == 6
    assert [p.name for p in skipped] == ["notes.txt"]


def test_image_folder_errors(tmp_path):
    (tmp_path / "one" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path / "one")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="one subfolder per class"):
        read_image_folder(tmp_path / "flat")


def test_file_dataset_drops_unreadable_files(tmp_path, tiny_folder):
    bad = write_bad_files(tmp_path / "bad")
    files = sorted((tiny_folder / "cat").iterdir()) + sorted(bad.iterdir())
    skipped = []
    dataset = make_file_dataset(files, [1] * len(files), (8, 8), skipped)
    images = list(finalize_dataset(dataset, 4, training=False))
    assert sum(len(batch[0]) for batch in images) == 6
    assert sorted(p.split("/")[-1] for p in skipped) == ["empty.jpg", "huge.png", "notes.jpg", "truncated.jpg"]


def test_resize_is_the_same_eagerly_and_in_tf_data():
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    eager = resize_images(image, (8, 8)).numpy()
    in_graph = next(iter(tf.data.Dataset.from_tensors(image).map(lambda x: resize_images(x, (8, 8))))).numpy()
    np.testing.assert_allclose(eager, in_graph, atol=1e-4)
