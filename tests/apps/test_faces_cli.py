"""Face verification through its command line: the shipped model (dlib's ResNet, offline), public-domain faces."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from dlapps.cli.common import default_model_dir
from tests.helpers import EXAMPLES, FACES, run_cli


def run(capsys, *argv):
    return run_cli(capsys, "faces", *argv)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Two 'people': the astronaut (three photos: as is, mirrored, smaller) and the camera man (two photos)."""
    root = tmp_path_factory.mktemp("people")
    astronaut = Image.open(FACES / "astronaut_face.jpg").convert("RGB")
    camera = Image.open(EXAMPLES / "camera.png").convert("RGB")
    (root / "gallery" / "eileen").mkdir(parents=True)
    (root / "gallery" / "lav").mkdir(parents=True)
    astronaut.save(root / "gallery" / "eileen" / "a.jpg")
    astronaut.transpose(Image.FLIP_LEFT_RIGHT).save(root / "gallery" / "eileen" / "b.png")
    camera.save(root / "gallery" / "lav" / "a.png")
    camera.crop((100, 0, 512, 412)).save(root / "gallery" / "lav" / "b.png")
    astronaut.resize((astronaut.width * 2 // 3, astronaut.height * 2 // 3)).save(root / "probe.jpg")
    Image.open(EXAMPLES / "coffee.png").save(root / "cup.png")
    return root


def test_verify_same_and_different_people(people, capsys, keras_home):
    code, out, err = run(capsys, "verify", people / "gallery" / "eileen" / "a.jpg", people / "probe.jpg", "--json")
    assert code == 0, err
    same = json.loads(out)
    assert same["same_person"] and same["distance"] < 0.3 and 0.5 < same["confidence"] <= 1
    code, out, err = run(capsys, "verify", people / "probe.jpg", people / "gallery" / "lav" / "a.png", "--json")
    assert code == 0, err
    different = json.loads(out)
    assert not different["same_person"] and different["distance"] > same["distance"] + 0.3


def test_no_face_is_named(people, capsys, keras_home):
    code, _, err = run(capsys, "verify", people / "cup.png", people / "probe.jpg")
    assert code == 2 and "no face found in" in err and "cup.png" in err


def test_enroll_identify_list_and_remove(people, capsys, keras_home, tmp_path):
    db = tmp_path / "faces.db"
    code, out, err = run(capsys, "enroll", people / "gallery", "--db", db, "--json")
    assert code == 0, err
    assert json.loads(out)["enrolled"] == {"eileen": 2, "lav": 2}
    code, out, err = run(capsys, "identify", people / "probe.jpg", people / "cup.png", "--db", db, "--json")
    assert code == 2 and "cup.png" in err  # The cup is named; the probe is still identified.
    result = json.loads(out.splitlines()[0])
    assert result["name"] == "eileen" and [p["name"] for p in result["top_k"]] == ["eileen", "lav"]
    # identify names a face only within the model's stricter open-set threshold; --threshold overrides it.
    shipped = json.loads((default_model_dir("face_verification") / "config.json").read_text())
    assert result["threshold"] == shipped["open_set_threshold"] < shipped["threshold"]
    code, out, _ = run(capsys, "identify", people / "probe.jpg", "--db", db, "--json", "--threshold", "1e-3")
    assert json.loads(out)["name"] == "unknown" and json.loads(out)["top_k"][0]["name"] == "eileen"
    code, out, _ = run(capsys, "gallery", "--db", db, "--remove", "eileen", "--json")
    assert code == 0 and json.loads(out)["people"] == {"lav": 2}
    code, out, _ = run(capsys, "identify", people / "probe.jpg", "--db", db, "--json")
    assert json.loads(out)["name"] == "unknown"


def test_evaluate_and_calibrate_on_a_pairs_file(people, capsys, keras_home, tmp_path):
    pairs = people / "pairs.txt"
    pairs.write_text(
        "gallery/eileen/a.jpg\tgallery/eileen/b.png\t1\ngallery/lav/a.png\tgallery/lav/b.png\t1\n"
        "gallery/eileen/a.jpg\tgallery/lav/a.png\t0\nprobe.jpg\tgallery/lav/b.png\t0\n"
    )
    code, out, err = run(capsys, "evaluate", pairs, "--output", tmp_path / "report", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pairs"] == 4 and report["roc_auc"] == 1.0
    assert (tmp_path / "report" / "roc.png").is_file() and (tmp_path / "report" / "worst_pairs.png").is_file()
    code, out, err = run(capsys, "calibrate", pairs, "--output", tmp_path / "calibrated", "--json")
    assert code == 0, err
    config = json.loads((tmp_path / "calibrated" / "config.json").read_text())
    assert config["app"] == "faces" and config["threshold"] == pytest.approx(json.loads(out)["best_threshold"])
    assert config["open_set_threshold"] == pytest.approx(json.loads(out)["tar_at_far_1e-3_threshold"])
    (people / "bad_pairs.txt").write_text("only one column\n")
    code, _, err = run(capsys, "evaluate", people / "bad_pairs.txt")
    assert code == 2 and "bad_pairs.txt:1" in err


def test_export_serves_the_same_embeddings(people, capsys, keras_home, tmp_path):
    import tensorflow as tf

    from dlapps.apps.face_verification.app import FaceModel
    from dlapps.data.faces import read_face_chips

    code, out, err = run(capsys, "export", "--output", tmp_path / "serving", "--json")
    assert code == 0, err
    probes = (people / "probe.jpg", people / "gallery" / "lav" / "a.png")
    chips = np.stack([read_face_chips(path)[0][1] for path in probes])
    expected = FaceModel(EXAMPLES.parent / "saved_models" / "face_verification").embed(chips)
    served = tf.saved_model.load(str(tmp_path / "serving"))
    for batch in (chips[:1], chips):
        embeddings = served.serve(tf.constant(batch))["embeddings"].numpy()
        np.testing.assert_allclose(embeddings, expected[: len(batch)], atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    code, out, err = run(capsys, "export", "--format", "tflite", "--output", tmp_path / "face.tflite")
    assert code == 0, err
    runner = tf.lite.Interpreter(str(tmp_path / "face.tflite")).get_signature_runner()
    np.testing.assert_allclose(runner(chips=chips[:1])["embeddings"], expected[:1], atol=1e-4)


def test_another_apps_folder_and_another_models_gallery_are_refused(people, capsys, keras_home, tmp_path):
    code, _, err = run(capsys, "verify", people / "probe.jpg", people / "probe.jpg", "--model",
                       EXAMPLES.parent / "saved_models" / "cat_classifier")  # fmt: skip
    assert code == 2 and "made by dlapps cat" in err
    from dlapps.gallery import Gallery

    Gallery(tmp_path / "other.db", "sha256:000000000000", 128).close()
    code, _, err = run(capsys, "identify", people / "probe.jpg", "--db", tmp_path / "other.db")
    assert code == 2 and "made with the model sha256:000000000000" in err
    # Listing and removing compare no embeddings: another model's gallery is listed without any --model.
    other = Gallery(tmp_path / "other.db", "sha256:000000000000", 128)
    other.enroll("ada", [np.eye(128, dtype=np.float32)[0]], ["a.jpg"])
    other.close()
    code, out, _ = run(capsys, "gallery", "--db", tmp_path / "other.db", "--json")
    assert code == 0 and json.loads(out)["people"] == {"ada": 1}


def four_people(folder):
    """Four "people" of two photos each (a photo and its mirror image), made from the two faces at hand."""
    astronaut = Image.open(FACES / "astronaut_face.jpg").convert("RGB")
    camera = Image.open(EXAMPLES / "camera.png").convert("RGB").crop((100, 0, 512, 412))
    for person, source in enumerate((astronaut, camera, astronaut.rotate(8), camera.rotate(-8))):
        (folder / f"p{person}").mkdir(parents=True)
        source.save(folder / f"p{person}" / "a.png")
        source.transpose(Image.FLIP_LEFT_RIGHT).save(folder / f"p{person}" / "b.png")
    return folder


def test_train_keeps_the_best_dev_epoch_and_stores_its_threshold(tmp_path, capsys, keras_home):
    four_people(tmp_path / "people")
    output = tmp_path / "model"
    code, out, err = run(
        capsys, "train", tmp_path / "people", "--output", output, "--backbone", "small_resnet", "--weights", "none",
        "--epochs", "2", "--steps-per-epoch", "2", "--people-per-batch", "2", "--images-per-person", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    with open(output / "history_train.csv") as file:
        accuracies = [float(row["val_pair_accuracy"]) for row in csv.DictReader(file)]
    phase = result["phases"]["train"]
    assert len(accuracies) == 2 and phase["best_epoch"] == int(np.argmax(accuracies)) + 1
    before = result["dev_accuracy_before_training"]
    kept = "before training" if max(accuracies) < before else "train"
    assert result["phases"]["kept"] == kept and (output / "training_curves.png").is_file()
    # A finished run is not resumed, nor overwritten.
    code, _, err = run(capsys, "train", tmp_path / "people", "--output", output, "--resume")
    assert code == 2 and "nothing to resume" in err
    code, _, err = run(capsys, "train", tmp_path / "people", "--output", output)
    assert code == 2 and "already holds a model" in err
    config = json.loads((output / "config.json").read_text())
    assert config["data"] == str((tmp_path / "people").resolve())
    # An interrupted run resumes on its own folder only (another folder would mix two runs' people).
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "elsewhere")}))
    (interrupted / "state.json").write_text(json.dumps({"phase_done": 0}))
    code, _, err = run(capsys, "train", tmp_path / "people", "--output", interrupted, "--resume")
    assert code == 2 and "is a run on" in err and "elsewhere" in err
    assert config["backbone"] == "small_resnet" and config["threshold"] == pytest.approx(
        result["dev"]["best_threshold"]
    )
    code, out, err = run(
        capsys, "verify", FACES / "astronaut_face.jpg", FACES / "astronaut_face.jpg", "--model", output
    )
    assert code == 0, err and "same person" in out


def test_a_cosface_warmup_trains_before_the_triplet_phase_and_the_embedder_is_what_is_saved(tmp_path, capsys,
                                                                                              keras_home):  # fmt: skip
    output = tmp_path / "model"
    code, _, err = run(capsys, "train", tmp_path / "people", "--output", output, "--warmup-epochs", "-1")
    assert code == 2 and "at least 0, got '-1'" in err and not output.exists()  # 0 (off) is allowed, -1 is not
    code, out, err = run(
        capsys, "train", four_people(tmp_path / "people"), "--output", output, "--backbone", "small_resnet",
        "--weights", "none", "--warmup-epochs", "2", "--epochs", "1", "--steps-per-epoch", "2",
        "--people-per-batch", "4", "--images-per-person", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    # 2 of the 4 people are held out as dev (at least 2 are, for different-people pairs): fewer than P = 4 left.
    assert "only 2 training people (after 2 held out as dev)" in err
    result = json.loads(out)
    assert [name for name in result["phases"] if name != "kept"] == ["warmup", "train"]
    with open(output / "history_warmup.csv") as file:
        rows = list(csv.DictReader(file))
    # Two epochs of a softmax over the 2 training people, each measured on the dev pairs through the embedder
    # inside the classifier.
    assert len(rows) == 2 and all(0 <= float(row["val_pair_accuracy"]) <= 1 for row in rows)
    assert json.loads((output / "config.json").read_text())["warmup_epochs"] == 2
    import keras

    model = keras.saving.load_model(output / "model.keras", compile=False)
    assert model.output_shape == (None, 128)
    code, out, err = run(capsys, "verify", FACES / "astronaut_face.jpg", FACES / "astronaut_face.jpg", "--model",
                         output, "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["distance"] == pytest.approx(0, abs=1e-5)


def test_user_mistakes_change_nothing_and_say_so(people, capsys, keras_home, tmp_path):
    import sqlite3

    # A SQLite file that is not a gallery: identify and gallery refuse it and leave it as it was.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    for verb in (["identify", people / "probe.jpg"], ["gallery"]):
        code, _, err = run(capsys, *verb, "--db", other)
        assert code == 2 and "not a face gallery" in err
    with sqlite3.connect(other) as connection:
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == ["t"]
    # An empty person folder is named and left out; the others are enrolled.
    folder = tmp_path / "people"
    for name in ("eileen", "lav"):
        (folder / name).mkdir(parents=True)
        for photo in (people / "gallery" / name).iterdir():
            (folder / name / photo.name).symlink_to(photo)
    (folder / "nobody").mkdir()
    db = tmp_path / "faces.db"
    code, out, err = run(capsys, "enroll", folder, "--db", db, "--json")
    assert code == 0 and "nobody: no photos" in err and json.loads(out)["enrolled"] == {"eileen": 2, "lav": 2}
    # A typo among the names to remove removes nobody.
    code, _, err = run(capsys, "gallery", "--db", db, "--remove", "lav", "Nobody Here")
    assert code == 2 and "nobody was removed" in err
    code, out, _ = run(capsys, "gallery", "--db", db, "--json")
    assert json.loads(out)["people"] == {"eileen": 2, "lav": 2}
    # calibrate never writes over a folder holding a model.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    code, _, err = run(capsys, "calibrate", folder, "--output", model)
    assert code == 2 and "already holds a model" in err and (model / "config.json").read_text() == "{}"
    # Figures a handful of pairs cannot measure are not printed as numbers.
    code, out, err = run(capsys, "evaluate", folder, "--output", tmp_path / "eval")
    assert code == 0 and "TAR@FAR=1e-3 n/a" in out and "10-fold threshold (LFW protocol): n/a" in out
    # A triplet needs two photos of a person in each batch.
    code, _, err = run(capsys, "train", folder, "--output", tmp_path / "t", "--images-per-person", "1")
    assert code == 2 and "at least 2" in err


def test_the_flip_rule_is_the_unit_mean_of_a_chip_and_its_mirrors_embeddings(people, keras_home, tmp_path):
    """The shipped model embeds each face twice, as is and mirrored (`config.json: flip`); a gallery of plain
    embeddings is another model's."""
    from dlapps.apps.face_verification.app import FaceModel
    from dlapps.data.faces import read_face_chips

    shipped = default_model_dir("face_verification")
    config = json.loads((shipped / "config.json").read_text())
    assert config["flip"] is True
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text(json.dumps({**config, "flip": False}))
    flipped, plain = FaceModel(shipped), FaceModel(tmp_path / "plain")
    chips = np.stack([read_face_chips(people / "probe.jpg")[0][1]])
    both = plain.embed(chips) + plain.embed(chips[:, :, ::-1])
    np.testing.assert_allclose(flipped.embed(chips), both / np.linalg.norm(both, axis=1, keepdims=True), atol=1e-5)
    assert flipped.identity == plain.identity + "+flip"
