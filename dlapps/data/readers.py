"""Readers: turn a data path on disk into images or file lists with labels.

Three layouts are understood: the course's catvnoncat HDF5 pair, an image folder with one subfolder per class,
and a folder that already holds `train/`, `val/` (and `test/`) splits of class subfolders.
"""

from pathlib import Path

import numpy as np

from dlapps.data.images import is_hidden, is_image_file, walk_files

SPLIT_NAMES = {"train": ("train", "training"), "dev": ("val", "valid", "validation", "dev"), "test": ("test",)}


class DataError(ValueError):
    """The data on disk is not in a layout we can read; the message says what was expected."""


def read_catvnoncat_h5(path):
    """Read a course-style HDF5 file: `*_set_x` images (N, H, W, 3) uint8, `*_set_y` labels, `list_classes`.

    Returns:
        (images, labels, class_names): uint8 array, int array of 0/1, and a list of class names.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    with file:
        keys = list(file.keys())
        x_keys = [k for k in keys if k.endswith("_set_x")]
        y_keys = [k for k in keys if k.endswith("_set_y")]
        if len(x_keys) != 1 or len(y_keys) != 1:
            raise DataError(
                f"{path}: expected one '*_set_x' and one '*_set_y' dataset (as in train_catvnoncat.h5). "
                f"Received keys: {keys}"
            )
        images = np.asarray(file[x_keys[0]])
        labels = np.asarray(file[y_keys[0]]).reshape(-1).astype(np.int64)
        if "list_classes" in file:
            class_names = [c.decode() if isinstance(c, bytes) else str(c) for c in file["list_classes"][()]]
        else:
            class_names = ["non-cat", "cat"]
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{path}: expected images of shape (N, H, W, 3) and N labels. "
            f"Received: images {images.shape}, labels {labels.shape}"
        )
    return images.astype(np.uint8), labels, class_names


def find_catvnoncat_pair(folder):
    """Return (train_file, test_file) in a folder holding the catvnoncat .h5 pair (test may be None)."""
    folder = Path(folder)
    train = sorted(folder.glob("train*.h5"))
    test = sorted(folder.glob("test*.h5"))
    if not train:
        return None, None
    return train[0], (test[0] if test else None)


def _class_folders(folder):
    """Subfolders (real or linked), hidden folders and OS leftovers excepted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and not is_hidden(p))


def _split_name(name):
    """'train', 'dev' or 'test' for a folder named like a split (any case), else None."""
    for split, aliases in SPLIT_NAMES.items():
        if name.lower() in aliases:
            return split
    return None


def read_image_folder(folder, class_names=None, allow_empty=False):
    """List an image folder with one subfolder per class (folders nested inside a class are included).

    Hidden files and folders (`.DS_Store`, `._photo.jpg`, `.ipynb_checkpoints/`) and OS leftovers (`Thumbs.db`) are
    never read; symbolic links to folders and files count like real ones.

    Args:
        folder: the folder.
        class_names: if given, the expected classes in index order (e.g. from a trained model); extra
            subfolders are an error, missing ones are allowed (a test split may lack a class).
        allow_empty: a subfolder without images is kept with no files (a person folder of a face gallery) instead
            of an error (a class a classifier would never see).

    Returns:
        (files, labels, class_names, skipped): lists of paths and int labels, the class names, and the
        non-image files that were skipped.

    Raises:
        DataError: no such folder; no class folders; a layout that would train the wrong classes (split folders
            or a single wrapping folder taken as classes); a class folder with no image files; a broken link.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    subfolders = _class_folders(folder)
    if not subfolders:
        raise DataError(f"{folder}: expected one subfolder per class (e.g. {folder}/cat, {folder}/non-cat); found none")
    names = [p.name for p in subfolders]
    _check_layout(folder, subfolders)
    if class_names is None:
        class_names = names
    else:
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise DataError(f"{folder}: class folders {unknown} are not classes of the model {list(class_names)}")
    files, labels, skipped, empty = [], [], [], []
    for subfolder in subfolders:
        label = list(class_names).index(subfolder.name)
        entries, dangling = walk_files(subfolder)
        if dangling:
            raise DataError(f"{dangling[0]}: broken symbolic link (its target is missing); remove it or fix the link")
        images = [p for p in entries if is_image_file(p)]
        skipped.extend(p for p in entries if not is_image_file(p))
        if not images:
            empty.append(subfolder.name)
        files.extend(images)
        labels.extend([label] * len(images))
    if empty and not allow_empty:
        raise DataError(f"{folder}: class folders with no images: {empty}")
    return files, labels, list(class_names), skipped


def _check_layout(folder, subfolders):
    """Refuse layouts that would silently train the wrong classes, saying what to pass instead."""
    splits = [p.name for p in subfolders if _split_name(p.name)]
    if splits:
        raise DataError(
            f"{folder}: folders {splits} look like data splits, not classes; pass the folder that holds train/ "
            f"(and val/, test/), each with one subfolder per class"
        )
    if len(subfolders) == 1:
        inner = _class_folders(subfolders[0])
        if len(inner) >= 2 and not any(is_image_file(p) for p in subfolders[0].iterdir()):
            raise DataError(
                f"{folder}: holds one folder, {subfolders[0].name}/, which holds the class folders "
                f"{[p.name for p in inner][:5]}; pass {subfolders[0]} instead"
            )
    for subfolder in subfolders:
        inner_splits = [p.name for p in _class_folders(subfolder) if _split_name(p.name)]
        if inner_splits:
            raise DataError(
                f"{subfolder}: class folder holds split folders {inner_splits}; expected train/<class>/..., "
                f"val/<class>/... (splits outside, classes inside)"
            )


def find_split_folders(folder):
    """If the folder holds `train/` and `val/` (and `test/`) splits, in any case, return {split: path}; else {}."""
    folder = Path(folder)
    found = {}
    for path in _class_folders(folder) if folder.is_dir() else []:
        split = _split_name(path.name)
        if split and split not in found:
            found[split] = path
    return found if "train" in found else {}


def check_images(files, on_progress=None):
    """Decode every file once, before any split is made, so that each unreadable one is named up front.

    Args:
        files: image paths.
        on_progress: called with 1 after each file (e.g. a progress bar's update).

    Returns:
        (readable, problems): the files that decode, and `(path, message)` pairs for those that do not.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dlapps.data.images import ImageReadError, read_image

    def check(path):
        try:
            read_image(path)
            return None
        except ImageReadError as error:
            return str(error)
        finally:
            if on_progress:
                on_progress(1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        messages = list(pool.map(check, files))
    readable = [path for path, message in zip(files, messages) if message is None]
    problems = [(path, message) for path, message in zip(files, messages) if message is not None]
    return readable, problems


def check_class_counts(labels, class_names, minimum, source):
    """Refuse a class with no readable image, or with fewer than `minimum` (too few for the dev/test split).

    Raises:
        DataError: naming each such class, its count and what to do.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    missing = [name for name, count in zip(class_names, counts) if count == 0]
    if missing:
        raise DataError(f"{source}: no readable image in class folders {missing}; a model would never see them")
    small = [f"{name} ({count})" for name, count in zip(class_names, counts) if count < minimum]
    if small:
        raise DataError(
            f"{source}: classes with fewer than {minimum} readable images, too few to split into train/dev/test: "
            f"{', '.join(small)}; add images, or give train/ and val/ folders yourself"
        )
    return counts


def stratified_split(labels, fractions, seed):
    """Split indices into parts, class by class, so each part keeps the class balance.

    Args:
        labels: int labels.
        fractions: fractions of the later parts, e.g. (0.15, 0.15) for train/dev/test; the first part
            takes the rest.
        seed: random seed; the same seed always gives the same split.

    Returns:
        A list of sorted index arrays, one per part (len(fractions) + 1 of them).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        start = len(indices)
        for part, fraction in reversed(list(enumerate(fractions, start=1))):
            count = int(round(fraction * len(indices)))
            if fraction > 0 and len(indices) >= 3:
                count = max(count, 1)  # Every class appears in every part when it can.
            parts[part].extend(indices[start - count : start])
            start -= count
        parts[0].extend(indices[:start])
    return [np.sort(np.asarray(part, dtype=np.int64)) for part in parts]
