"""Neural style transfer by optimisation, through its command line, on tiny images."""

import json

import numpy as np
from PIL import Image

from apps.__main__ import main as dlapps
from tests.helpers import EXAMPLES


def test_optimisation_lowers_the_loss_and_writes_the_image_and_curves(tmp_path, capsys):
    code = dlapps([
        "style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"),
        "--steps", "6", "--max-size", "48", "--output", str(tmp_path), "--json", "--save-every", "3",
    ])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["last"]["style"] < result["first"]["style"]  # From the content photo, towards the style.
    image = np.asarray(Image.open(tmp_path / "chelsea_stylised.png"))
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert (tmp_path / "chelsea_losses.png").is_file() and (tmp_path / "chelsea_step0006.png").is_file()
    assert len(json.loads((tmp_path / "chelsea_losses.json").read_text())) == 6


def test_style_weights_must_match_the_styles(tmp_path, capsys):
    code = dlapps(["style", "predict", str(EXAMPLES / "chelsea.png"), "--style", str(EXAMPLES / "rocket.jpg"),
                   "--style-weights", "0.5", "0.5", "--output", str(tmp_path)])  # fmt: skip
    assert code == 2 and "2 weights for 1 styles" in capsys.readouterr().err
