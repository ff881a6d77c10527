"""Docs that run: the README's "From Python" code and the quick-start notebook, executed as a user would run them
(from a folder holding the examples, with a tiny `pictures/` folder of their own)."""

import json
import os
import re
from pathlib import Path

import pytest

from tests.helpers import write_tiny_image_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A working folder like a checkout's: examples/ and tests/data/ at hand, plus a tiny pictures/ folder."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    write_tiny_image_folder(tmp_path / "pictures", {"ant": 8, "bee": 8})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


def _run(code, name):
    exec(compile(code, name, "exec"), {"__name__": "__main__"})  # noqa: S102 (our own docs)


def test_the_readme_from_python_section_runs(user_folder, capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]  # the first block runs as is (the second: placeholders)
    _run(code, "README.md")
    out = capsys.readouterr().out
    assert "raccoon" in out and "True" in out and '"ant"' not in out
    assert (user_folder / "chelsea_starry_night.png").is_file()
    assert (user_folder / "runs" / "quick_try" / "model.keras").is_file()


def test_the_quickstart_notebook_runs(user_folder):
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert len(cells) >= 5
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace = {"__name__": "__main__"}
    for index, code in enumerate(cells):
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        exec(compile(code, f"quickstart.ipynb cell {index}", "exec"), namespace)  # noqa: S102
