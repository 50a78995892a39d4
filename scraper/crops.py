"""What a crop is (``urllist -a crop=1``): a derived file, identified by its source photo and its box.

A FaceScrub-style list gives, per row, a photo URL and the box ``x1,y1,x2,y2`` of one face in it.
With ``crop=1`` the stored file is that box cut out of the downloaded photo (re-encoded: JPEG at
quality 95, other formats as PNG), named like every file by the hash of its own bytes; its record
says ``derived: "crop"`` and keeps the source's ``original_hash`` and ``original_bytes`` and the
``bbox``. One face of one source photo is stored once:

- the same source bytes with a box covering the same face (the boxes overlap by at least half
  of the smaller one) are an ``exact-duplicate`` of the stored crop, whatever the URL or the exact box;
  with another gender, a ``label-conflict``;
- the same source bytes with a box elsewhere (another face of a group photo) give another crop;
- a crop of a photo already stored whole is an ``exact-duplicate`` of that photo.

So a list that names one photo twice (two URLs, two slightly different boxes) yields one file,
as it would without ``crop=1``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Boxes of one source photo that overlap by at least this share of the smaller one show the same face.
SAME_FACE_OVERLAP = 0.5

Box = Sequence[int]


def overlap(a: Box, b: Box) -> float:
    """The area two ``x1,y1,x2,y2`` boxes share, as a share of the smaller box (0 to 1)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller if smaller > 0 else 0.0


def same_face(a: Box | None, b: Box | None) -> bool:
    """True when two boxes of one source photo show the same face (a missing box covers all of it)."""
    if not a or not b:
        return True
    return overlap(a, b) >= SAME_FACE_OVERLAP
