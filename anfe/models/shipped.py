"""The builds shipped inside the package, so that ``anfe predict PHOTO`` answers before any crawl.

They are made by the project's own commands (``anfe build`` and ``anfe evaluate``) from the
public LFW photos of the shared data set, slimmed (member and split hashes dropped, their
fingerprints kept) and stamped with their provenance: source, counts, seed, parameters, the
commit they were made at and their hold-out figures. Remake them with::

    python -m anfe.models.shipped /path/to/lfw/labels.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from anfe.core.errors import UnknownBuildError
from anfe.core.store import open_store

#: The shipped builds: the plain average (predict's default) and 16 k-means centroids per gender.
DEFAULT_SHIPPED = "lfw_all"
SHIPPED_IDS = ("lfw_all", "lfw_all_k16")
#: The folder inside the package that holds them (package data).
DATA_FOLDER = "shipped_builds"
#: How they are made: a 70/30 split by person, every usable photo of the training part.
BUILD_ARGS = ("--sizes", "all", "--test-fraction", "0.3", "--split-by", "person", "--seed", "0",
              "--split-seed", "0", "--prefix", "lfw")
KMEANS_ARGS = ("--variant", "kmeans", "--k", "16")
#: Digits kept per centroid coordinate (the embeddings themselves carry about 4).
DIGITS = 6


def _data_file(build_id: str):
    return resources.files("anfe.models").joinpath(DATA_FOLDER, f"{build_id}.json")


def is_shipped(build_id: str) -> bool:
    """True when ``build_id`` names a build that ships with the package."""
    return build_id in SHIPPED_IDS and _data_file(build_id).is_file()


def load_shipped(build_id: str = DEFAULT_SHIPPED) -> dict:
    """The shipped build ``build_id`` as a build document (as :meth:`Store.get_build` returns)."""
    if not is_shipped(build_id):
        raise UnknownBuildError(f"no shipped build {build_id!r}; shipped: {', '.join(SHIPPED_IDS)}")
    return json.loads(_data_file(build_id).read_text(encoding="utf-8"))


def shipped_builds() -> list[dict]:
    """Every shipped build that the package holds."""
    return [load_shipped(i) for i in SHIPPED_IDS if is_shipped(i)]


def describe(build: dict) -> str:
    """One line: which shipped build answers, from what, and how well on held-out people."""
    counts = " + ".join(f"{n} {g}" for g, n in build.get("counts", {}).items())
    held = (build.get("shipped") or {}).get("holdout") or {}
    figure = f", held-out balanced accuracy {held['balanced']}" if held.get("balanced") else ""
    return (f"using the shipped build {build['id']} (LFW, {counts} photos{figure}); "
            "pass --build ID with --root/--db to use your own")


def slim(build: dict, provenance: dict[str, Any]) -> dict:
    """A build document without its long hash lists (fingerprints stay), centroids rounded,
    with ``provenance`` under ``shipped``."""
    doc = {k: v for k, v in build.items() if k != "members"}
    doc["centroids"] = {g: [[round(x, DIGITS) for x in row] for row in c] if c and isinstance(c[0], list)
                        else [round(x, DIGITS) for x in c] for g, c in build["centroids"].items()}
    if doc.get("split"):
        doc["split"] = {k: v for k, v in doc["split"].items() if k != "test"}
    doc["dataset"] = {k: v for k, v in (doc.get("dataset") or {}).items() if k not in ("source", "labels")}
    doc["shipped"] = provenance
    return doc


def _anfe(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "anfe", *args], check=True, capture_output=True, text=True)
    return done.stdout


def _commit() -> str:
    here = Path(__file__).resolve().parent
    found = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def remake(labels_csv: Path, out_dir: Path, cache: str | None = None) -> list[Path]:
    """Run ``anfe build`` (both variants) and ``anfe evaluate`` on LFW; write the slim builds."""
    extra = ("--cache", cache) if cache else ()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "catalog.sqlite")
        _anfe("build", str(labels_csv), *BUILD_ARGS, "--db", db, *extra)
        _anfe("build", str(labels_csv), *BUILD_ARGS, *KMEANS_ARGS, "--db", db, *extra)
        results = json.loads(_anfe("evaluate", ",".join(SHIPPED_IDS), "--json", "--no-baselines", "--db", db,
                                   "--out", str(Path(tmp) / "reports"), *extra))
        with open_store(db) as store:
            builds = {i: store.get_build(i) for i in SHIPPED_IDS}
    figures = {r["build"]["id"]: r for r in results}
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for build_id, build in builds.items():
        r = figures[build_id]
        provenance = {
            "source": "LFW (Labeled Faces in the Wild), the shared set's labels.csv: "
                      f"{build['dataset'].get('images')} photos of {labels_csv.parent.name}",
            "command": f"python -m anfe.models.shipped LFW/labels.csv (anfe build {' '.join(BUILD_ARGS)}"
                       + (f" {' '.join(KMEANS_ARGS)}" if build.get("variant") == "kmeans" else "") + ")",
            "commit": _commit(),
            "holdout": {
                "balanced": f"{100 * r['balanced_accuracy']:.1f}%",
                "balanced_interval": r["balanced_interval"],
                "per_gender": {g: v["accuracy"] for g, v in r["per_gender"].items()},
                "test_images": r["images"],
                "test_people": (r.get("people") or {}).get("test_people"),
            },
        }
        path = out_dir / f"{build_id}.json"
        path.write_text(json.dumps(slim(build, provenance), separators=(",", ":")) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m anfe.models.shipped LABELS_CSV [--out DIR] [--cache FILE]``: remake the shipped builds."""
    parser = argparse.ArgumentParser(prog="python -m anfe.models.shipped", description=main.__doc__)
    parser.add_argument("labels_csv", type=Path, help="LFW's labels.csv (path, gender, identity)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / DATA_FOLDER)
    parser.add_argument("--cache", default=None, help="analysis cache [default: anfe's]")
    args = parser.parse_args(argv)
    for path in remake(args.labels_csv, args.out, args.cache):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


__all__ = ["DEFAULT_SHIPPED", "SHIPPED_IDS", "describe", "is_shipped", "load_shipped", "main", "remake",
           "shipped_builds", "slim"]

if __name__ == "__main__":
    main()
