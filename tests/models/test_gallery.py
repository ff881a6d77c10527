import sqlite3

import numpy as np
import pytest

from models.gallery import Gallery, GalleryError, rank_people


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
