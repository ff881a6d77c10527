import sqlite3

import numpy as np
import pytest

from dlapps.gallery import Gallery, GalleryError, rank_people


def _unit(*values):
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


def test_enroll_list_identify_and_remove(tmp_path):
    gallery = Gallery(tmp_path / "faces.db", "model-a", 2)
    assert gallery.enroll("ada", [_unit(1, 0), _unit(1, 0.1)], ["a1.jpg", "a2.jpg"]) == 2
    gallery.enroll("bob", [_unit(0, 1)], ["b1.jpg"])
    gallery.enroll("ada", [_unit(1, 0.05)], ["a2.jpg"])  # Re-enrolled image: replaced, not doubled.
    assert gallery.people() == [("ada", 2), ("bob", 1)]
    names, vectors = gallery.embeddings()
    ranked = rank_people(_unit(1, 0.02), names, vectors, "nearest")
    assert [name for name, _ in ranked] == ["ada", "bob"] and ranked[0][1] < 0.05
    assert rank_people(_unit(0, 1), names, vectors, "mean")[0] == ("bob", pytest.approx(0.0, abs=1e-6))
    assert gallery.remove("bob") and not gallery.remove("bob")
    assert gallery.people() == [("ada", 2)]
    gallery.close()
    # Reopened: everything was committed.
    assert Gallery(tmp_path / "faces.db", "model-a", 2).people() == [("ada", 2)]


def test_another_models_gallery_is_refused(tmp_path):
    Gallery(tmp_path / "faces.db", "model-a", 2).close()
    with pytest.raises(GalleryError, match="made with the model model-a"):
        Gallery(tmp_path / "faces.db", "model-b", 2)
    # Opened for listing, without a model: any model's gallery, read as it is.
    listing = Gallery(tmp_path / "faces.db", None, None, create=False)
    assert listing.model_id == "model-a" and listing.dimension == 2 and listing.people() == []
    with pytest.raises(ValueError, match="needs the identity"):
        Gallery(tmp_path / "new.db", None, None, create=True)
    # Without a model, Gallery(path) only reads an existing gallery; it never makes an empty one.
    with pytest.raises(GalleryError, match=r"no such gallery; enroll people first \(FaceVerifier.gallery"):
        Gallery(tmp_path / "new.db")
    assert not (tmp_path / "new.db").exists()
    (tmp_path / "notes.db").write_text("not a database at all, just some text that is long enough " * 20)
    with pytest.raises(GalleryError, match="not a face gallery"):
        Gallery(tmp_path / "notes.db", "model-a", 2)


def test_a_failed_enroll_leaves_nothing_half_written(tmp_path):
    gallery = Gallery(tmp_path / "faces.db", "model-a", 2)
    with pytest.raises(ValueError):
        gallery.enroll("eve", [_unit(1, 0), _unit(0, 1)], ["only-one-source.jpg"])  # zip(strict=True) fails.
    assert gallery.people() == []
    # Another connection (another process) sees a consistent file while one writes.
    other = sqlite3.connect(tmp_path / "faces.db")
    assert other.execute("SELECT COUNT(*) FROM embeddings").fetchone() == (0,)


def test_gallery_index_equals_brute_force_and_cuts_at_top_k():
    from dlapps.gallery import GalleryIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"p{i % 7}" for i in rng.permutation(60)]  # unsorted, several images each
    query = vectors[5] * 0.9 + vectors[6] * 0.1
    index = GalleryIndex(names, vectors)
    for mode in ("nearest", "mean"):
        expected = {}
        for name in set(names):
            own = vectors[[n == name for n in names]]
            if mode == "mean":
                own = own.mean(axis=0, keepdims=True) / np.linalg.norm(own.mean(axis=0))
            expected[name] = float(np.min(np.linalg.norm(own - query, axis=1)))
        ranked = index.rank(query, mode)
        assert [n for n, _ in ranked] == sorted(expected, key=expected.get)
        np.testing.assert_allclose([d for _, d in ranked], sorted(expected.values()), atol=1e-5)
        assert index.rank(query, mode, top_k=3) == ranked[:3]
    assert GalleryIndex([], np.zeros((0, 8), np.float32)).rank(query) == []
