"""The face gallery: enrolled people and their embeddings in SQLite, tied to the model that made them.

SQLite (the standard library) gives what a gallery needs on one machine: transactions, so that an interrupted or
concurrent `enroll` loses nothing and leaves nothing half-written, and one file to copy. Embeddings are float32 blobs.
The gallery records the identity of the embedding model; opening it with another model is refused, since distances
between two models' embeddings mean nothing. `Gallery` is the whole interface the apps use, so a server database
(PostgreSQL with pgvector) can stand behind the same methods when many machines share one gallery.
"""

import sqlite3
import unicodedata
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (person_id, source)
);
"""


def normalise_name(name):
    """A person's name as stored and compared: Unicode NFC, outer spaces removed (so "José" typed with a composed
    or a decomposed "é" is one person).

    Raises:
        ValueError: the name is empty (or only spaces).
    """
    normal = unicodedata.normalize("NFC", str(name)).strip()
    if not normal:
        raise ValueError(f"a person's name cannot be empty. Received: {name!r}")
    return normal


class GalleryError(ValueError):
    """The gallery file cannot be used: another model's gallery, another dimension, or not a gallery."""


class Gallery:
    """People and their face embeddings in one SQLite file. Names are stored and looked up NFC-normalised
    (`normalise_name`), whichever way they are typed.

    Args:
        path: the database file (created if missing).
        model_id: the identity of the embedding model (e.g. "dlib_resnet_v1:55533b28"); a gallery made with
            another model is refused. None (with `create=False`): any model's gallery, for listing and removing
            people, which compare no embeddings.
        dimension: the embedding size (128; None with `model_id` None).
        create: make the file and its tables if missing (enroll; the default with a `model_id`); False (the default
            without one, as `dlapps.Gallery(path)`) for read-only use, which refuses a file
            that is not already a gallery.

    Raises:
        GalleryError: the file was made with another model or dimension, or is not a gallery.
    """

    def __init__(self, path, model_id=None, dimension=None, create=None):
        create = model_id is not None if create is None else create
        if model_id is None and create:
            raise ValueError("a new gallery needs the identity of its model: make one with FaceVerifier.gallery(path)")
        self.path = Path(path)
        self.model_id = None if model_id is None else str(model_id)
        self.dimension = None if dimension is None else int(dimension)
        try:
            if not create:
                # Read-only use (identify, listing): a file that is not already a gallery is refused, never changed.
                if not self.path.is_file():
                    raise GalleryError(
                        f"{self.path}: no such gallery; enroll people first (FaceVerifier.gallery(path) makes one)"
                    )
                self.connection = sqlite3.connect(self.path, timeout=30.0)
                tables = {row[0] for row in self.connection.execute("SELECT name FROM sqlite_master")}
                if not {"settings", "people", "embeddings"} <= tables:
                    self.connection.close()
                    raise GalleryError(f"{self.path}: not a face gallery (an SQLite file without its tables)")
            else:
                self.connection = sqlite3.connect(self.path, timeout=30.0)
            self.connection.execute("PRAGMA foreign_keys = ON")
            with self.connection:
                self.connection.executescript(SCHEMA)
                stored = dict(self.connection.execute("SELECT key, value FROM settings"))
                if not stored:
                    self.connection.executemany(
                        "INSERT INTO settings VALUES (?, ?)",
                        [("model_id", self.model_id), ("dimension", str(self.dimension))],
                    )
        except sqlite3.DatabaseError as error:
            raise GalleryError(f"{self.path}: not a face gallery ({error})") from None
        if self.model_id is None:
            self.model_id, self.dimension = stored.get("model_id"), int(stored.get("dimension", 0))
        if stored and (stored.get("model_id") != self.model_id or int(stored.get("dimension", 0)) != self.dimension):
            raise GalleryError(
                f"{self.path}: this gallery was made with the model {stored.get('model_id')} "
                f"({stored.get('dimension')}-D); the current model is {self.model_id}. Enroll again into a new --db"
            )

    def enroll(self, name, embeddings, sources):
        """Add one person's embeddings (float (n, dim)) with their source files, in one transaction.

        An image already enrolled for that person (same source) is replaced. Returns the person's embedding count.
        """
        vectors = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.dimension)
        name = self._stored_name(name)
        with self.connection:
            self.connection.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
            (person_id,) = self.connection.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            self.connection.executemany(
                "INSERT OR REPLACE INTO embeddings (person_id, source, vector) VALUES (?, ?, ?)",
                [(person_id, str(source), vector.tobytes()) for vector, source in zip(vectors, sources, strict=True)],
            )
        return self.count(name)

    def _stored_name(self, name):
        """The name as stored for `name`: its NFC form, or the spelling of a person stored before names were
        normalised whose NFC form is the same."""
        name = normalise_name(name)
        if self.connection.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone():
            return name
        for (stored,) in self.connection.execute("SELECT name FROM people"):
            if unicodedata.normalize("NFC", stored).strip() == name:
                return stored
        return name

    def has(self, name):
        """Whether a person of this name (NFC-normalised) is enrolled."""
        name = self._stored_name(name)
        return self.connection.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None

    def count(self, name):
        name = self._stored_name(name)
        row = self.connection.execute(
            "SELECT COUNT(*) FROM embeddings JOIN people ON people.id = person_id WHERE name = ?", (name,)
        ).fetchone()
        return int(row[0])

    def people(self):
        """[(name, number of embeddings)] sorted by name."""
        rows = self.connection.execute(
            "SELECT name, COUNT(embeddings.id) FROM people LEFT JOIN embeddings ON people.id = person_id "
            "GROUP BY people.id ORDER BY name"
        )
        return [(name, int(count)) for name, count in rows]

    def remove(self, name):
        """Remove a person and their embeddings. Returns False if there was no such person."""
        name = self._stored_name(name)
        with self.connection:
            cursor = self.connection.execute("DELETE FROM people WHERE name = ?", (name,))
        return cursor.rowcount > 0

    def add(self, name):
        """Add a person with no photos yet (a subject to add faces to later); returns False if already enrolled."""
        name = self._stored_name(name)
        with self.connection:
            cursor = self.connection.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
        return cursor.rowcount > 0

    def rename(self, name, new_name):
        """Rename a person, keeping their photos.

        Raises:
            KeyError: no such person. ValueError: `new_name` is empty or already another person's.
        """
        name, new_name = self._stored_name(name), normalise_name(new_name)
        if not self.has(name):
            raise KeyError(name)
        if new_name != name and self.has(new_name):
            raise ValueError(f"{new_name!r} is already enrolled; remove or rename that person first")
        with self.connection:
            self.connection.execute("UPDATE people SET name = ? WHERE name = ?", (new_name, name))
        return new_name

    def faces(self, name):
        """[(face id, source)] of one person's stored embeddings, oldest first.

        Raises:
            KeyError: no such person.
        """
        name = self._stored_name(name)
        if not self.has(name):
            raise KeyError(name)
        rows = self.connection.execute(
            "SELECT embeddings.id, source FROM embeddings JOIN people ON people.id = person_id WHERE name = ? "
            "ORDER BY embeddings.id",
            (name,),
        )
        return [(int(face_id), source) for face_id, source in rows]

    def remove_face(self, name, face_id):
        """Remove one stored embedding of a person. Returns False if that person has no such face."""
        name = self._stored_name(name)
        with self.connection:
            cursor = self.connection.execute(
                "DELETE FROM embeddings WHERE id = ? AND person_id = (SELECT id FROM people WHERE name = ?)",
                (int(face_id), name),
            )
        return cursor.rowcount > 0

    def embeddings(self):
        """(names, vectors): one name per stored embedding and the (n, dim) float32 matrix."""
        rows = self.connection.execute(
            "SELECT name, vector FROM embeddings JOIN people ON people.id = person_id ORDER BY name, embeddings.id"
        ).fetchall()
        names = [name for name, _ in rows]
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32).reshape(-1, self.dimension)
        return names, vectors

    def close(self):
        self.connection.close()


class GalleryIndex:
    """Enrolled embeddings arranged once for fast lookups: one (n, dim) matrix grouped by person, each person's
    first row, and each person's L2-normalised mean embedding. A lookup is one matrix-vector product (NumPy's BLAS)
    and a per-person minimum (`np.minimum.reduceat`): about a millisecond for 100,000 embeddings
    (`benchmarks/faces_identify_speed.py`).

    Args:
        names: one person name per embedding (any order).
        vectors: float (n, dim) embeddings, unit length.
    """

    def __init__(self, names, vectors):
        names = np.asarray(names)
        order = np.argsort(names, kind="stable")
        self.vectors = np.ascontiguousarray(np.asarray(vectors, np.float32)[order])
        self.people, self.starts = np.unique(names[order], return_index=True)
        self.squared_norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        means = np.add.reduceat(self.vectors, self.starts, axis=0) if len(self.vectors) else self.vectors
        self.means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)

    def rank(self, query, mode="nearest", top_k=None):
        """[(name, Euclidean distance)] of the `top_k` nearest people (all when None), nearest first.

        mode: "nearest" (the distance to the person's closest image) or "mean" (to the person's mean embedding).
        """
        if not len(self.people):
            return []
        query = np.asarray(query, np.float32).reshape(-1)
        if mode == "mean":
            distances = np.linalg.norm(self.means - query, axis=1)
        else:
            squared = self.squared_norms - 2.0 * (self.vectors @ query) + float(query @ query)
            distances = np.sqrt(np.maximum(np.minimum.reduceat(squared, self.starts), 0.0))
        count = len(distances) if top_k is None else min(int(top_k), len(distances))
        nearest = np.argpartition(distances, count - 1)[:count]
        nearest = nearest[np.argsort(distances[nearest], kind="stable")]
        return [(str(self.people[i]), float(distances[i])) for i in nearest]


def rank_people(query, names, vectors, mode="nearest"):
    """Each enrolled person's distance to a query embedding, nearest first (a one-off `GalleryIndex(...).rank`).

    Args:
        query: float (dim,) embedding.
        names, vectors: from `Gallery.embeddings()`.
        mode: "nearest" (the distance to the person's closest image) or "mean" (to the L2-normalised mean of the
            person's embeddings).

    Returns:
        [(name, Euclidean distance)] sorted by distance.
    """
    return GalleryIndex(names, vectors).rank(query, mode)
