"""The served models, loaded once for the serve tests (the shipped presets: real answers, a few seconds to load)."""

import pytest

MODELS = "cat,detect=raccoon,faces,style=starry_night"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'dlapps[serve]'")
    from dlapps.serve import Registry, parse_models

    # Micro-batches on (not the default): every detect answer in these tests goes through the batched path.
    return Registry(parse_models(MODELS), tmp_path_factory.mktemp("serve") / "gallery.db", max_batch=8)
