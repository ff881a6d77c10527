"""`dlapps faces enroll`, `identify` and `gallery`: people's photos read from the layouts people keep, and the
enrolled gallery (`dlapps.gallery.Gallery`)."""

import re
from pathlib import Path

from dlapps.apps.face_verification.app import PROG
from dlapps.cli.common import (
    EXIT_BAD_INPUT,
    ProgressBar,
    emit,
    warn,
)
from dlapps.data.readers import DataError, read_image_folder
from dlapps.gallery import Gallery, GalleryIndex, normalise_name

EXPECTED_PEOPLE = (
    "expected a folder of person subfolders (people/alice/1.jpg), a flat folder of name.jpg files (one person "
    "each, named by the file: younes.jpg -> younes), or photos with --name"
)


# A file stem that names no one: no letter at all (1.jpg, 2024-05-01 10.31.02.jpg), or a camera's or phone's numbered
# name (IMG_0001, DSC01234, PXL_20240501_103102, photo 3): a folder of them is one person's photos, not a flat gallery.
CAMERA_NAME = re.compile(r"^[^a-zA-Z]*$|^(img|dsc|dscn|dscf|pxl|p|dcim|photo|image|pic|picture|scan|mvimg|screenshot)"
                         r"[\W_]*\d", re.IGNORECASE)  # fmt: skip


def _layout_error(path, problem, flat=True):
    """A DataError saying what the faces app expects instead."""
    expected = EXPECTED_PEOPLE if flat else "expected one subfolder per person, each with photos (people/alice/1.jpg)"
    return DataError(f"{path}: {problem}; {expected}")


def read_people(folder, flat=False):
    """(files, labels, names) of a folder of identities (one subfolder per person; with `flat`, a folder of
    name.jpg photos is also accepted, one person per file named by its stem); non-image files, loose files beside
    the person folders and person folders without photos are named and left out, not fatal."""
    from dlapps.data.images import is_hidden, is_image_file
    from dlapps.data.readers import _split_name

    folder = Path(folder)
    if not folder.is_dir():
        raise _layout_error(folder, "not a folder", flat)
    entries = [p for p in folder.iterdir() if not is_hidden(p)]
    subfolders = sorted(p for p in entries if p.is_dir())
    photos = sorted(p for p in entries if p.is_file() and is_image_file(p))
    if not subfolders:
        if flat and photos:
            numbered = [p.name for p in photos if CAMERA_NAME.match(p.stem)]
            if numbered:
                problem = (f"its photos are named like a camera's or by number ({numbered[0]}), not by person: to "
                           "enroll them as one person, pass --name NAME")  # fmt: skip
                raise _layout_error(folder, problem, flat)
            names = sorted({normalise_name(p.stem) for p in photos})
            return photos, [names.index(normalise_name(p.stem)) for p in photos], names
        found = f"{len(photos)} photo(s) and no person subfolders" if photos else "no person subfolders nor photos"
        raise _layout_error(folder, f"holds {found}", flat)
    splits = [p.name for p in subfolders if _split_name(p.name)]
    if splits:
        raise _layout_error(folder, f"holds {splits}, which look like data splits, not people", flat)
    try:
        files, labels, names, skipped = read_image_folder(folder, allow_empty=True)
    except DataError as error:
        raise DataError(f"{error}; {EXPECTED_PEOPLE if flat else 'expected one subfolder per person'}") from None
    for path in skipped:
        warn(PROG, f"skipping non-image file {path}")
    loose = [p for p in entries if p.is_file()]
    if loose:
        warn(PROG, f"{folder}: {len(loose)} file(s) beside the person folders left out (e.g. {loose[0].name}); "
                   "put each photo in its person's folder")  # fmt: skip
    present = set(labels)
    for index, name in enumerate(names):
        if index not in present:
            warn(PROG, f"{folder / name}: no photos; this person is left out")
    return files, labels, names


def _people_to_enroll(paths, name, problems):
    """[(name, [photos])] from the command line: with `name`, every photo of `paths` (files, one person's folders)
    is that person's; without, each path is a folder of person subfolders or a flat folder of name.jpg files.
    Paths that fit neither go to `problems` (their messages), and the rest are still enrolled."""
    from dlapps.data.images import is_hidden, is_image_file, list_image_files

    if name is not None:
        photos = []
        for path in map(Path, paths):
            if path.is_dir():
                inner = [p for p in path.iterdir() if p.is_dir() and not is_hidden(p)]
                if inner and not any(p.is_file() and is_image_file(p) for p in path.iterdir()):
                    problems.append(f"{path}: holds person subfolders ({', '.join(sorted(p.name for p in inner)[:3])}"
                                    f"), but --name enrolls one person; drop --name to enroll each subfolder as a "
                                    "person")  # fmt: skip
                    continue
            files, missing = list_image_files([path])
            problems.extend(message for _, message in missing)
            photos.extend(files)
        return [(name, photos)] if photos else []
    people = {}
    for path in map(Path, paths):
        if not path.exists():
            problems.append(f"{path}: no such file or folder")
        elif not path.is_dir():
            problems.append(f'{path}: a photo needs --name "Person Name"; {EXPECTED_PEOPLE}')
        else:
            try:
                files, labels, names = read_people(path, flat=True)
            except DataError as error:
                problems.append(str(error))
                continue
            for file, label in zip(files, labels, strict=True):
                people.setdefault(names[label], []).append(file)
    return list(people.items())


def enroll(args):
    from dlapps.apps.faces import FaceVerifier

    problems = []
    name = normalise_name(args.name) if args.name is not None else None
    people = _people_to_enroll(args.paths, name, problems)
    for problem in problems:
        warn(PROG, f"error: {problem}")
    if not people:
        raise DataError(f"nothing to enroll in {', '.join(map(str, args.paths))}"
                        + ("" if problems else f"; {EXPECTED_PEOPLE}"))  # fmt: skip
    faces = FaceVerifier.from_folder(args.model)
    gallery = faces.gallery(args.db)
    failures, summary, missed = [], {}, []
    progress = ProgressBar(len(people), "enrolling")
    try:
        for person, photos in people:
            progress.update()
            skipped = []
            try:
                # One transaction per person: an interruption keeps every person enrolled before it.
                summary[person] = faces.enroll(gallery, person, photos, skipped=skipped)
            except ValueError as error:
                warn(PROG, f"{error}")
                missed.append(person)
            failures.extend(str(record.source) for record in skipped)
        total = len(gallery.people())
    finally:
        gallery.close()
    result = {"db": str(args.db), "enrolled": summary, "not_enrolled": missed, "skipped": failures,
              "problems": problems, "people": total}  # fmt: skip
    lines = [f"  {person}: {count} image(s)" for person, count in summary.items()]
    people = f"{len(summary)} {'person' if len(summary) == 1 else 'people'}"
    lines.append(f"enrolled {people} into {args.db} ({total} in all)"
                 + (f"; not enrolled: {', '.join(missed)}" if missed else ""))  # fmt: skip
    emit(args, result, "\n".join(lines))
    return EXIT_BAD_INPUT if failures or missed or problems else None


def _open_gallery(db, face_model=None):
    """An existing gallery (a missing file is an error, not a new empty gallery), made with `face_model` (None: any
    model's, for listing and removing people, which compare no embeddings)."""
    if Path(db).is_dir():
        raise ValueError(f"--db {db} is a folder; pass the gallery file made by enroll")
    if not Path(db).is_file():
        raise ValueError(f"{db}: no such gallery; enroll people first (dlapps faces enroll DIR --db {db})")
    if face_model is None:
        return Gallery(db, None, None, create=False)
    return Gallery(db, face_model.identity, 128, create=False)


def identify(args):
    from dlapps.apps.faces import FaceVerifier

    faces = FaceVerifier.from_folder(args.model)
    gallery = _open_gallery(args.db, faces.face_model)
    names, vectors = gallery.embeddings()
    if not names:
        raise ValueError(f"{args.db}: the gallery is empty; enroll people first")
    failures = 0
    options = {"top_k": args.top_k, "match": args.match, "threshold": args.threshold, "all_faces": args.all_faces}
    for result in faces.identify_iter(args.paths, GalleryIndex(names, vectors), **options):
        if not result.ok:
            failures += 1
            if args.json:
                emit(args, result.to_dict(), "")
            continue
        best, distance = result.top_k[0]
        others = ", ".join(f"{n} {d:.3f}" for n, d in result.top_k[1:])
        text = f"{result.source}: {result.name} (closest {best}, distance {distance:.3f})"
        emit(args, result.to_dict(), text + (f"; then {others}" if others else ""))
    gallery.close()
    return EXIT_BAD_INPUT if failures else None


def gallery(args):
    store = _open_gallery(args.db)  # no model: listing and removing compare no embeddings
    try:
        remove = [normalise_name(name) for name in args.remove]
        unknown = [name for name in remove if not store.has(name)]
        if unknown:  # checked before removing anyone: a typo removes nobody
            raise ValueError(f"{args.db}: no person named {', '.join(map(repr, unknown))}; nobody was removed")
        for name in remove:
            store.remove(name)
        people = store.people()
    finally:
        store.close()
    removed = f"removed {', '.join(remove)}\n" if remove and not args.json else ""
    listing = "\n".join(f"{name}: {count} image(s)" for name, count in people) or f"{args.db}: empty"
    emit(args, {"db": str(args.db), "people": dict(people), "removed": remove}, removed + listing)
