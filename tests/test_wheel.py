"""A plain (non-editable) install of the built wheel: one top-level name, shipped models found by preset, each app's
main job offline, run from a folder that holds a user's own `models.py` and `apps/` (YOLOv5's bug #2414)."""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout and installed (without its dependencies, which this environment has) into
    a folder of its own, first on the path."""
    root = tmp_path_factory.mktemp("wheel")
    # Without build isolation when setuptools is at hand (offline); else pip fetches it from the package registry.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, str(ROOT), "-w",
                    str(root / "dist")], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (root / "dist").glob("dlapps-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(root / "site"),
                    str(wheel)], check=True, capture_output=True)  # fmt: skip
    user = root / "user_project"  # a user's folder, with the generic names that used to clash with ours
    (user / "apps").mkdir(parents=True)
    (user / "models.py").write_text("raise ImportError('the user models.py was imported')\n")
    (user / "apps" / "__init__.py").write_text("raise ImportError('the user apps/ was imported')\n")
    return wheel, root / "site", user


def _run(installed, *argv):
    _, site, user = installed
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *argv], cwd=user, env=env, capture_output=True, text=True)


def test_the_wheel_installs_one_top_level_name_with_the_shipped_models(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info" not in name} == {"dlapps"}
    assert "dlapps/saved_models/object_detector/model.keras" in names


def test_each_apps_main_job_runs_from_the_installed_wheel_offline(installed):
    _, site, _ = installed
    code = ("import dlapps, json; assert dlapps.__file__.startswith({site!r}), dlapps.__file__;"
            "print(json.dumps([type(dlapps.load(p)).__name__ for p in dlapps.list_presets()]))")  # fmt: skip
    result = _run(installed, "-c", code.format(site=str(site)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(result.stdout)) == {"CatClassifier", "ObjectDetector", "FaceVerifier", "StyleTransfer"}
    examples = ROOT / "examples"
    for argv in (
        ["cat", "predict", str(examples / "chelsea.png"), "--json"],
        ["detect", "predict", str(examples / "raccoons.jpg"), "--model", "raccoon", "--no-images", "--json"],
        ["faces", "verify", str(examples / "astronaut.png"), str(ROOT / "tests/data/faces/astronaut_face.jpg"),
         "--json"],
        ["style", "predict", str(examples / "chelsea.png"), "--model", "starry_night", "--max-size", "64", "--json"],
    ):  # fmt: skip
        result = _run(installed, "-m", "dlapps", *argv)
        assert result.returncode == 0, (argv, result.stderr[-3000:])
        assert json.loads(result.stdout.splitlines()[0])
