"""Batch inference on Apache Beam's DirectRunner (in this process, offline): every app's records equal `predict`'s,
a bad file lands in the dead-letter output, embeddings as Parquet, the transform inside a user's own pipeline."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from dlapps.cli import main as dlapps
from tests.helpers import EXAMPLES

beam = pytest.importorskip("apache_beam", reason="pip install 'dlapps[beam]'")
PAINTING = EXAMPLES.parent / "dlapps" / "saved_models" / "style_transfer" / "kandinsky" / "style.jpg"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small photos, a face among them, and a broken file named like a photo."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("chelsea.png", "astronaut.png", "raccoons.jpg"):
        image = Image.open(EXAMPLES / name).convert("RGB")
        image.thumbnail((160, 160))
        image.save(folder / name)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    (folder / "notes.txt").write_text("not an image file: never read")
    return folder


def read_lines(prefix, kind):
    files = sorted(prefix.glob(f"{kind}-*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def local_records(capsys, argv):
    dlapps([*argv, "--json"])
    return {r["path"]: r for r in map(json.loads, capsys.readouterr().out.splitlines()) if "error" not in r}


@pytest.mark.parametrize("argv", [["cat", "predict"], ["detect", "predict", "--model", "raccoon", "--no-images"],
                                  ["faces", "embed"]])  # fmt: skip
def test_records_equal_predict_and_bad_files_go_to_the_dead_letter(argv, photos, tmp_path, capsys):
    out = str(tmp_path / "out")
    code = dlapps([*argv[:2], str(photos), *argv[2:], "--runner", "direct", "--output", out, "--json"])
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 2 and summary["images"] == 4 and summary["runner"] == "direct"  # a failure: exit 2, the rest done
    records = {r["path"]: r for r in read_lines(tmp_path / "out", "records")}
    failures = read_lines(tmp_path / "out", "failures")
    assert str(photos / "broken.jpg") in [f["path"] for f in failures] and all("error" in f for f in failures)
    local = local_records(capsys, [*argv[:2], *[str(p) for p in sorted(photos.glob("*.*"))
                                                 if p.suffix != ".txt"], *argv[2:]])  # fmt: skip
    assert local and records == {path: records[path] for path in local} and set(records) == set(local)
    if argv[0] == "faces":  # the face also as Parquet, for a data warehouse
        import pyarrow.parquet

        table = pyarrow.parquet.read_table(next((tmp_path / "out").glob("embeddings-*.parquet")))
        assert table.num_rows == len(records) and len(table.column("embedding")[0]) == 128


def test_style_writes_the_images_beside_the_records(photos, tmp_path, capsys):
    code = dlapps(["style", "predict", str(photos / "chelsea.png"), "--style", str(PAINTING), "--max-size", "64",
                   "--runner", "direct", "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (record,) = read_lines(tmp_path / "out", "records")
    assert Image.open(record["output"]).size == (64, 42) and "_png" not in record


def test_the_transform_inside_a_users_own_pipeline(photos):
    from apache_beam.testing.util import assert_that, equal_to

    from dlapps.beam import predict_transform

    with beam.Pipeline(runner="DirectRunner") as pipeline:
        out = pipeline | beam.Create([str(photos / "*.png")]) | predict_transform("cat")
        assert_that(out.records | beam.Map(lambda r: r["label"]), equal_to(["cat", "non-cat"]), label="labels")


def test_without_beam_the_line_says_how_to_get_it():
    code = "import sys; sys.modules['apache_beam'] = None\ntry:\n import dlapps.beam\nexcept ImportError as e: print(e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "pip install 'dlapps[beam]'" in out
