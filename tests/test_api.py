"""The small public API (``anfe.analyse``, ``embed``, ``load_build``, ``predict``) on real photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anfe
from anfe.core.errors import ImageError, UnknownBuildError
from anfe.core.store import open_store


def test_importing_anfe_loads_no_model_and_exposes_the_api():
    code = "import sys, anfe; anfe.embed; anfe.predict; print('dlib' in sys.modules, sorted(anfe.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(" ", 1)[0] == "False"
    assert "'analyse', 'embed', 'load_build', 'predict'" in out
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        anfe.nothing  # noqa: B018


def _two_adults(utkface_rows) -> tuple[Path, Path]:
    woman = next(r for r in utkface_rows if r["gender"] == "female" and 25 <= int(r["age"]) <= 40)
    man = next(r for r in utkface_rows if r["gender"] == "male" and 25 <= int(r["age"]) <= 40)
    return Path(woman["path"]), Path(man["path"])


@pytest.mark.slow
def test_analyse_embed_and_predict_with_a_stored_build(utkface_rows, tmp_path):
    woman, man = _two_adults(utkface_rows)
    analysis = anfe.analyse(woman)
    assert analysis.ok and analysis.face_count == 1 and analysis.content_hash
    top, right, bottom, left = analysis.faces[0].box
    assert 0 <= left < right and 0 <= top < bottom
    [vector] = anfe.embed(woman.read_bytes())  # bytes or a path: the same face
    assert vector.shape == (128,) and np.allclose(vector, analysis.faces[0].embedding, atol=1e-6)

    build = {"id": "api-test", "centroids": {"female": [vector.tolist()], "male": [anfe.embed(man)[0].tolist()]},
             "embedding_model": {}}
    with open_store(None, tmp_path) as store:
        store.save_build(build)
    loaded = anfe.load_build("api-test", root=tmp_path)
    assert loaded["id"] == "api-test"
    assert anfe.predict(woman, loaded).verdict == "female"
    assert anfe.predict(man.read_bytes(), loaded).verdict == "male"
    with pytest.raises(UnknownBuildError):
        anfe.load_build("no-such-build", root=tmp_path)


def test_embed_refuses_what_is_not_an_image_with_the_reason(tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    assert anfe.analyse(junk).error == "not-an-image"
    with pytest.raises(ImageError) as caught:
        anfe.embed(junk)
    assert caught.value.reason == "not-an-image"
