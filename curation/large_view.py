"""The large view of one photo: the picture with its face boxes drawn, what its scores and reason
mean in words, and reference photos of the person it is said to show (their photos nearest the
median of their embeddings), to judge "wrong person" side by side. Plain functions; the page
draws what they return.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anfe.faces.analysis import ImageAnalysis
from anfe.faces.cache import AnalysisCache
from anfe.core.config import DEFAULT_MAX_PIXELS
from anfe.core.errors import ImageError
from anfe.faces.imaging import decode_image
from anfe.core.layout import DatasetLayout
from anfe.core.store import Store

from .views import QueueItem
from .moves import STATUS_ACTIVE

#: How many reference photos of a person are shown beside a photo.
REFERENCES = 4
#: The most photos of one person read to pick the references (a person's gallery, not the catalog).
PERSON_LIMIT = 500


def boxed_jpeg(path: Path, analysis: ImageAnalysis | None, side: int = 720) -> bytes | None:
    """The photo (longer side at most ``side``) with each detected face's box drawn; None when it
    cannot be read."""
    try:
        image = Image.fromarray(decode_image(Path(path).read_bytes(), DEFAULT_MAX_PIXELS))
    except (OSError, ImageError):
        return None
    scale = min(1.0, side / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 150))
    for face in analysis.faces if analysis else ():
        top, right, bottom, left = (round(v * scale) for v in face.box)
        draw.rectangle((left, top, right, bottom), outline=(255, 40, 40), width=width)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def explain(item: QueueItem, analysis: ImageAnalysis | None, labels: Sequence[str]) -> list[str]:
    """What is known of the photo, in words (plain text, one sentence each)."""
    lines = []
    others = [g for g in labels if g != item.gender] or ["the other label"]
    if item.score is not None:
        other = others[0] if len(others) == 1 else "another label"
        lean = ("closer to the average " + other + " face than to the average " + item.gender + " face: "
                "a suspected label error" if item.score > 0 else
                "closer to the average " + item.gender + " face, as its label says")
        lines.append(f"Suspicion {item.score:+.3f}: the distance of this face to the average {item.gender} face "
                     f"(without this photo) minus its distance to the average {other} face. Above 0 it is {lean}; "
                     "the larger, the surer.")
    faces = analysis.face_count if analysis else item.faces
    if analysis and analysis.error:
        lines.append(f"The analysis could not use it: {analysis.error}.")
    elif faces == 0:
        lines.append("No face was found: it cannot be scored.")
    elif faces and faces > 1:
        lines.append(f"{faces} faces were found (boxes drawn): it is not scored, one face is needed.")
    elif faces == 1:
        lines.append("One face was found (box drawn).")
    if item.entry_id:
        lines.append(f"Sent to review by the automatic cleaning as {item.rule}"
                     + (f": {item.detail}." if item.detail else "."))
    elif item.rule:
        lines.append(f"The cleaning noted: {item.rule}.")
    if item.person:
        lines.append(f"Said to show {item.person}" + (f", from {item.source}." if item.source else "."))
    return lines


@dataclass(frozen=True)
class Reference:
    """A photo of the person: its path and its distance to the median of their photos."""

    path: Path
    content_hash: str
    distance: float


def references(layout: DatasetLayout, store: Store, cache: AnalysisCache, record: dict | None,
               exclude: str, count: int = REFERENCES) -> list[Reference]:
    """The person's typical photos: among their photos under a label (at most :data:`PERSON_LIMIT`,
    one query on an index of :data:`curation.catalog.INDEXES`), those with one face nearest the median of their embeddings; not ``exclude``."""
    if not record or record.get("person_id") in (None, "") and not record.get("person_name"):
        return []
    who = ({"person_id": record["person_id"]} if record.get("person_id") not in (None, "")
           else {"person_name": record["person_name"]})
    if record.get("site"):
        who["site"] = record["site"]
    rows = store.query_images(["content_hash", "path"], limit=PERSON_LIMIT, status=STATUS_ACTIVE, **who)
    analyses = cache.get_many([r["content_hash"] for r in rows])
    vectors = {r["content_hash"]: (r, v) for r in rows
               if (a := analyses.get(r["content_hash"])) is not None and (v := a.single_embedding) is not None}
    if not vectors:
        return []
    median = np.median(np.stack([v for _, v in vectors.values()]), axis=0)
    ranked = sorted((float(np.linalg.norm(v - median)), h, r) for h, (r, v) in vectors.items() if h != exclude)
    return [Reference(layout.root / str(r.get("path") or ""), h, d) for d, h, r in ranked[:count]]


__all__ = ["PERSON_LIMIT", "REFERENCES", "Reference", "boxed_jpeg", "explain", "references"]
