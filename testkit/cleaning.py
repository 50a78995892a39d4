"""The messy dataset root the cleaning tests share: one case for every rule, what each case
should become, and cleaning it with the default parameters."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from PIL import Image

from anfe.core.config import AnalysisParams
from anfe.faces.cache import AnalysisCache
from curation.clean import clean
from curation.rules import CleanRules

PARAMS = AnalysisParams()
GROUP = "dlib/examples/faces/2008_001009.jpg"  # two faces, 360x480
DOG = "dlib/examples/faces/dogs.jpg"



def run_clean(root: Path, cache_path: Path, rules: CleanRules | None = None, **kwargs):
    with AnalysisCache(cache_path, PARAMS.cache_key) as cache:
        return clean(root, rules or CleanRules(), PARAMS, cache, workers=1, progress=False, **kwargs)


EXPECTED = {
    "male/empty.jpg": "unreadable", "male/cut.jpg": "unreadable", "female/notes.txt": "unreadable",
    "female/tiny.jpg": "too-small", "female/dogs.jpg": "no-face", "male/group.jpg": "many-faces",
    "male/exact-copy.jpg": "exact-duplicate", "male/both-genders.jpg": "label-conflict",
}


def make_messy_root(tmp_path: Path, utkface_rows: list[dict], shared_faces: Path) -> tuple[Path, Path]:
    """A dataset root with one case for every rule, and a labels CSV with ages."""
    root = tmp_path / "data"
    male, female = root / "images" / "male", root / "images" / "female"
    male.mkdir(parents=True)
    female.mkdir(parents=True)
    adults = [r for r in utkface_rows if 25 <= int(r["age"]) <= 40]
    men = [r for r in adults if r["gender"] == "male"][:3]
    women = [r for r in adults if r["gender"] == "female"][:2]
    child = next(r for r in utkface_rows if r["age"] == "8" and r["gender"] == "male")
    labels = []
    for row in [*men, child]:
        shutil.copyfile(row["path"], male / Path(row["path"]).name)
        labels.append({"path": f"images/male/{Path(row['path']).name}", "age": row["age"]})
    for row in women:
        shutil.copyfile(row["path"], female / Path(row["path"]).name)
    shutil.copyfile(men[0]["path"], male / "exact-copy.jpg")                      # exact-duplicate
    shutil.copyfile(women[0]["path"], male / "both-genders.jpg")                  # label-conflict
    big = Image.open(men[1]["path"]).resize((400, 400), Image.LANCZOS)
    big.save(male / "bigger-copy.jpg", quality=90)                                 # near-duplicate (kept)
    shutil.copyfile(shared_faces / "facecount" / GROUP, male / "group.jpg")        # many-faces
    shutil.copyfile(shared_faces / "facecount" / DOG, female / "dogs.jpg")         # no-face
    small = io.BytesIO()
    Image.open(women[1]["path"]).resize((40, 40)).save(small, "JPEG")
    (female / "tiny.jpg").write_bytes(small.getvalue())                            # too-small
    (male / "empty.jpg").write_bytes(b"")                                          # unreadable
    (male / "cut.jpg").write_bytes(Path(men[2]["path"]).read_bytes()[:3000])       # unreadable (truncated)
    (female / "notes.txt").write_text("not a photo")                               # unreadable (not an image)
    (female / ".part-123").write_bytes(b"a download in progress")                  # ignored
    with (root / "ages.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "age"])
        writer.writeheader()
        writer.writerows(labels)
    return root, root / "ages.csv"
