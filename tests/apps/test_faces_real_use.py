"""`dlapps faces` on faces as cameras take them and folders as people keep them: one person's photos by name, the
course's flat folder of name.jpg files, faces too small to align, several faces in a photo, names typed two ways,
people too alike to tell apart, and pairs files with bad lines. Each test is built from a tiny input of its kind."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import EXAMPLES, FACES, run_cli

# What every refusal of a folder must name: the faces app's own layouts, never the cat app's.
LAYOUTS = ("person subfolders", "name.jpg", "--name")


def run(capsys, *argv):
    return run_cli(capsys, "faces", *argv)


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The astronaut (as is, mirrored), the camera man, a cup (no face), a tiny astronaut (a 16-pixel face) and a
    group photo (the astronaut twice, the second copy at 0.7 scale)."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = Image.open(FACES / "astronaut_face.jpg").convert("RGB")
    astronaut.save(root / "astronaut.jpg")
    astronaut.transpose(Image.FLIP_LEFT_RIGHT).save(root / "astronaut_mirrored.png")
    Image.open(EXAMPLES / "camera.png").convert("RGB").save(root / "camera.png")
    Image.open(EXAMPLES / "coffee.png").convert("RGB").save(root / "cup.png")
    # The face is about 90 pixels wide in the 256-pixel photo: a 46-pixel copy holds a 16x19-pixel face.
    tiny = Image.new("RGB", (64, 64), (128, 128, 128))
    tiny.paste(astronaut.resize((46, 46), Image.LANCZOS), (0, 0))
    tiny.save(root / "tiny.png")
    group = Image.new("RGB", (256 + 179, 256), (128, 128, 128))
    group.paste(astronaut, (0, 0))
    group.paste(astronaut.resize((179, 179), Image.LANCZOS), (256, 0))
    group.save(root / "group.png")
    return root


# === 1. One person by name, one person's folder, the course's flat folder ===


def test_one_person_is_enrolled_by_name_from_photos_or_their_folder(photos, capsys, keras_home, tmp_path):
    db = tmp_path / "g.db"
    code, out, err = run(capsys, "enroll", photos / "astronaut.jpg", "--name", "Al Gore", "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled"] == {"Al Gore": 1}
    code, out, err = run(capsys, "enroll", photos / "camera.png", photos / "cup.png", "--name", "Lav", "--db", db,
                         "--json")  # fmt: skip
    # The cup shows no face: it is named, the camera man is still enrolled, and the exit code says so.
    assert code == 2 and "cup.png" in err and json.loads(out)["enrolled"] == {"Lav": 1}
    folder = tmp_path / "al"
    folder.mkdir()
    for name in ("astronaut.jpg", "astronaut_mirrored.png"):
        (folder / name).symlink_to(photos / name)
    code, out, err = run(capsys, "enroll", folder, "--name", "Al Gore", "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled"] == {"Al Gore": 2} and json.loads(out)["people"] == 2


def test_the_courses_flat_folder_of_name_jpg_files_is_one_person_per_file(photos, capsys, keras_home, tmp_path):
    flat = tmp_path / "images"
    flat.mkdir()
    (flat / "younes.jpg").symlink_to(photos / "astronaut.jpg")
    (flat / "kian.png").symlink_to(photos / "camera.png")
    code, out, err = run(capsys, "enroll", flat, "--db", tmp_path / "g.db", "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled"] == {"kian": 1, "younes": 1}


def test_folders_that_fit_no_layout_are_refused_naming_the_faces_apps_layouts(photos, capsys, keras_home, tmp_path):
    # One person's photos named like a camera's, without --name: not a flat gallery of people "1" and "2".
    one = tmp_path / "one_person"
    one.mkdir()
    (one / "1.jpg").symlink_to(photos / "astronaut.jpg")
    (one / "IMG_0002.png").symlink_to(photos / "astronaut_mirrored.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (one, empty):
        code, _, err = run(capsys, "enroll", folder, "--db", tmp_path / "g.db")
        assert code == 2 and all(words in err for words in LAYOUTS), err
        assert "cat" not in err and not (tmp_path / "g.db").exists()
    assert "pass --name" in run(capsys, "enroll", one, "--db", tmp_path / "g.db")[2]
    # A single photo without --name.
    code, _, err = run(capsys, "enroll", photos / "astronaut.jpg", "--db", tmp_path / "g.db")
    assert code == 2 and "needs --name" in err
    # --name with a folder of person subfolders: one name for many people is refused, the good path goes on.
    people = tmp_path / "people"
    (people / "al").mkdir(parents=True)
    (people / "al" / "a.jpg").symlink_to(photos / "astronaut.jpg")
    code, out, err = run(capsys, "enroll", people, photos / "camera.png", "--name", "Lav", "--db", tmp_path / "g.db",
                         "--json")  # fmt: skip
    assert code == 2 and "drop --name" in err and json.loads(out)["enrolled"] == {"Lav": 1}


# === 2. A face too small to align ===


def test_a_face_too_small_to_align_is_refused_with_its_size(photos, capsys, keras_home, tmp_path):
    from dlapps.data.faces import MIN_FACE_SIDE, FaceTooSmallError, detect_faces, read_face_chips

    (face,) = detect_faces(np.asarray(Image.open(photos / "tiny.png")))
    assert min(face.box[2:]) < MIN_FACE_SIDE  # YuNet finds it, but it is too small to align
    with pytest.raises(FaceTooSmallError, match=r"tiny.png: face too small to align: \d+x\d+ pixels; at least 20"):
        read_face_chips(photos / "tiny.png")
    code, out, err = run(capsys, "verify", photos / "tiny.png", photos / "astronaut.jpg")
    assert code == 2 and "face too small to align" in err and "at least 20" in err and not out
    code, out, err = run(capsys, "enroll", photos / "tiny.png", "--name", "Wee", "--db", tmp_path / "g.db", "--json")
    assert code == 2 and "face too small to align" in err
    assert json.loads(out)["enrolled"] == {} and json.loads(out)["not_enrolled"] == ["Wee"]


# === 4. Several faces: verify says how many and which; --all-faces compares them all ===


def test_verify_says_how_many_faces_and_which_and_compares_all_with_all_faces(photos, capsys, keras_home):
    code, out, err = run(capsys, "verify", photos / "group.png", photos / "astronaut.jpg", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["faces_a"] == 2 and result["faces_b"] == 1
    assert "group.png: 2 faces found; the largest is used (box [" in err
    assert result["box_a"][0] < 256 and result["box_a"][2] > 80  # the full-size copy, on the left
    code, out, err = run(capsys, "verify", photos / "group.png", photos / "astronaut.jpg", "--all-faces", "--json")
    assert code == 0, err
    records = json_lines(out)
    assert len(records) == 2 and records[0]["distance"] <= records[1]["distance"]
    assert {record["box_a"][0] < 256 for record in records} == {True, False}  # each face of the group once
    assert all(record["same_person"] and record["faces_a"] == 2 for record in records)
    code, out, _ = run(capsys, "verify", photos / "group.png", photos / "astronaut.jpg", "--all-faces")
    assert "2 faces" in out and out.count("same person") == 2


# === 5 and 6. Names typed two ways are one person; people too alike are said to be ===


def test_names_are_nfc_and_alike_people_are_flagged_at_enroll_and_identify(photos, capsys, keras_home, tmp_path):
    db = tmp_path / "g.db"
    composed, decomposed = "Eil\u00e9en", "Eile\u0301en"
    assert run(capsys, "enroll", photos / "astronaut.jpg", "--name", composed, "--db", db)[0] == 0
    code, out, err = run(capsys, "enroll", photos / "astronaut_mirrored.png", "--name", decomposed, "--db", db,
                         "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["enrolled"] == {composed: 2} and "close to" not in err  # one person, not two
    # The same face under another name: enrolled, with a warning naming whom it is close to.
    code, out, err = run(capsys, "enroll", photos / "astronaut_mirrored.png", "--name", "Bob", "--db", db)
    assert code == 0 and f"close to {composed}, distance 0." in err
    code, out, err = run(capsys, "identify", photos / "astronaut.jpg", "--db", db, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["name"] == composed and sorted(record["ambiguous"]) == sorted(["Bob", composed])
    assert "both" in err and "Bob" in err
    code, out, _ = run(capsys, "identify", photos / "camera.png", "--db", db, "--json")
    assert json.loads(out)["ambiguous"] == []
    # Removing by the decomposed spelling removes the person stored composed.
    code, out, err = run(capsys, "gallery", "--db", db, "--remove", decomposed, "--json")
    assert code == 0, err
    assert json.loads(out)["people"] == {"Bob": 1}


def test_the_gallery_compares_names_nfc_and_keeps_older_spellings(tmp_path):
    from dlapps.gallery import Gallery

    gallery = Gallery(tmp_path / "g.db", "test:model", 4)
    vector = np.eye(4, dtype=np.float32)[0]
    # A name stored decomposed by an older version is the same person as its composed spelling.
    with gallery.connection:
        gallery.connection.execute("INSERT INTO people (name) VALUES (?)", ("Jose\u0301",))
    assert gallery.enroll("Jos\u00e9 ", [vector], ["a.jpg"]) == 1
    assert [name for name, _ in gallery.people()] == ["Jose\u0301"] and gallery.has("Jos\u00e9")
    assert gallery.remove("Jos\u00e9") and gallery.people() == []
    with pytest.raises(ValueError, match="cannot be empty"):
        gallery.enroll("  ", [vector], ["b.jpg"])
    gallery.close()


# === 7. Pairs files with bad lines ===


def test_a_pairs_file_with_a_bad_line_and_a_faceless_pair_is_measured_without_them(photos, capsys, keras_home,
                                                                                   tmp_path):  # fmt: skip
    pairs = photos / "pairs.txt"
    pairs.write_text(
        "astronaut.jpg\tastronaut_mirrored.png\t1\n"
        "astronaut.jpg camera.png 0\n"  # spaces, not tabs: malformed
        "camera.png\tcamera.png\t1\n"
        "astronaut.jpg\tcamera.png\t0\n"
        "cup.png\tastronaut.jpg\t0\n"  # no face in the cup
        "astronaut_mirrored.png\tcamera.png\t0\n"
    )
    code, out, err = run(capsys, "evaluate", pairs, "--output", tmp_path / "report", "--json")
    assert code == 2, err
    assert "pairs.txt:2: expected" in err and "pairs.txt:5: pair left out: no usable face in" in err
    report = json.loads(out)
    assert report["pairs"] == report["pairs_evaluated"] == 4 and report["malformed_lines"] == [2]
    assert [item["line"] for item in report["pairs_left_out"]] == [5]
    code, out, err = run(capsys, "evaluate", pairs, "--output", tmp_path / "report")
    assert code == 2 and "4 pairs evaluated" in out and "2 left out (1 malformed line(s), 1 pair(s)" in out
    code, out, err = run(capsys, "calibrate", pairs, "--output", tmp_path / "calibrated", "--json")
    assert code == 2 and json.loads(out)["pairs_evaluated"] == 4
    calibration = json.loads((tmp_path / "calibrated" / "config.json").read_text())["calibration"]
    assert calibration["count"] == 4 and calibration["malformed_lines"] == [2]


def test_the_verbs_help_tells_the_exit_code_and_the_layouts(capsys):
    for verb, words in (("evaluate", "Exit code 2"), ("calibrate", "Exit code 2"), ("enroll", "Exit code 2"),
                        ("identify", "ambiguous"), ("verify", "--all-faces"), ("enroll", "name.jpg")):  # fmt: skip
        code, out, _ = run(capsys, verb, "--help")
        assert code == 0 and words in " ".join(out.split()), (verb, words)


def test_the_api_enrolls_arrays_as_distinct_photos_and_names_nfc(photos, tmp_path, caplog):
    import dlapps as api

    faces = api.FaceVerifier.from_preset()
    gallery = faces.gallery(tmp_path / "g.db")
    astronaut = np.asarray(Image.open(photos / "astronaut.jpg"))
    skipped = []
    # Two different arrays in two calls are two photos; a faceless one is reported in `skipped`, not fatal.
    assert faces.enroll(gallery, "Eil\u00e9en", [astronaut]) == 1
    assert faces.enroll(gallery, "Eile\u0301en", [astronaut[:, ::-1].copy(), photos / "cup.png"], skipped) == 2
    assert [record.kind for record in skipped] == ["NoFaceError"] and gallery.people() == [("Eil\u00e9en", 2)]
    with caplog.at_level("WARNING", logger="dlapps"):
        faces.enroll(gallery, "Bob", [photos / "astronaut_mirrored.png"])
    assert "close to Eil\u00e9en" in caplog.text
    (found,) = faces.identify(photos / "astronaut.jpg", gallery, top_k=1)
    assert found.to_dict()["ambiguous"] == [found.name, "Bob"] and len(found.top_k) == 1
    gallery.close()
