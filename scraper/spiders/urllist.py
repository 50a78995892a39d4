"""The URL-list spider: FaceScrub-style lists (name, image_id, face_id, url, bbox, sha256), tab-separated.

``scrapy crawl urllist -a file=facescrub_actors.txt -a gender=male [-a crop=1] [-a shard=K/N]``. The gender comes
from a ``gender`` column when the header has one, else ``-a gender=``, else the file name
(``actresses`` -> female, ``actors`` -> male). A given sha256 is checked (a mismatch is dropped
as ``hash-mismatch``); ``crop=1`` stores the crop to the bbox ``x1,y1,x2,y2`` as a derived file.
``shard=K/N`` keeps only the rows of shard K of N (``anfe crawl urllist --processes N`` runs them
all at once, see :mod:`scraper.shards`): rows are shared out by their sha256 when the list gives
one, so the same bytes always land in the same process, else by URL.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UrlListError
from ..shards import parse_shard, shard_of
from .base import HarvestSpider, count_drop, gender_argument

COLUMNS = ("name", "image_id", "face_id", "url", "bbox", "sha256")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class UrlRow:
    """One usable line of a URL list."""

    line: int
    name: str
    image_id: str
    face_id: str
    url: str
    bbox: tuple[int, int, int, int] | None
    sha256: str | None
    gender: str | None


def parse_bbox(text: str) -> tuple[int, int, int, int] | None:
    """``"x1,y1,x2,y2"`` -> a tuple with x1 < x2 and y1 < y2; None when empty; ValueError when bad."""
    if not text.strip():
        return None
    parts = [int(round(float(p))) for p in text.split(",")]
    if len(parts) != 4 or parts[0] >= parts[2] or parts[1] >= parts[3] or min(parts) < 0:
        raise ValueError(f"bad bbox {text!r}: need x1,y1,x2,y2 with x1<x2, y1<y2")
    return parts[0], parts[1], parts[2], parts[3]


def gender_from_file_name(path: Path) -> str | None:
    """FaceScrub ships ``facescrub_actors.txt`` and ``facescrub_actresses.txt``."""
    name = path.name.lower()
    if "actress" in name:
        return "female"
    if "actor" in name:
        return "male"
    return None


def read_url_list(path: Path) -> Iterator[UrlRow | tuple[int, str]]:
    """Rows of the list; a bad line comes as ``(line number, why)`` instead of raising."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UrlListError(f"cannot read the URL list {path}: {exc}") from exc
    with handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns: list[str] = list(COLUMNS)
        for number, fields in enumerate(reader, start=1):
            if not fields or not "".join(fields).strip() or fields[0].startswith("#"):
                continue
            if number == 1 and fields[0].strip().lower() == "name":
                columns = [f.strip().lower() for f in fields]
                if "url" not in columns:
                    raise UrlListError(f"{path}: the header has no 'url' column")
                continue
            row = dict(zip(columns, (f.strip() for f in fields)))
            if len(fields) < min(len(columns), 4) or not row.get("url", "").startswith(("http://", "https://")):
                yield number, "needs name, image_id, face_id and an http(s) url"
                continue
            try:
                bbox = parse_bbox(row.get("bbox", ""))
            except ValueError as exc:
                yield number, str(exc)
                continue
            sha = row.get("sha256") or None
            if sha and not _SHA256.match(sha):
                yield number, f"bad sha256 {sha!r}"
                continue
            gender = row.get("gender") or None
            yield UrlRow(number, row.get("name", ""), row.get("image_id", ""), row.get("face_id", ""),
                         row["url"], bbox, sha.lower() if sha else None, gender)


def refuse_placeholders(path: Path) -> None:
    """A demo-site list still holding ``__HOST__`` cannot be fetched: name the file that works."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise UrlListError(f"cannot read the URL list {path}: {exc}") from exc
    if "__HOST__" in text:
        raise UrlListError(
            f"{path} is the demo site's list template (its URLs say __HOST__): use the copy that "
            f"`anfe site serve` writes to the site's top folder ({path.name} there)"
        )


class UrlListSpider(HarvestSpider):
    """Downloads the photos a FaceScrub-style list names, labelled by column, flag or file name."""

    name = "urllist"
    site = "urllist"

    def __init__(self, *args: Any, file: str | None = None, crop: str | None = None,
                 site: str | None = None, shard: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shard = parse_shard(shard)
        if not file:
            raise UrlListError("the urllist spider needs -a file=PATH (a FaceScrub-style list)")
        self.list_path = Path(file)
        if not self.list_path.is_file():
            raise UrlListError(f"the URL list {self.list_path} does not exist")
        refuse_placeholders(self.list_path)
        self.crop = str(crop or "").lower() in ("1", "true", "yes", "on")
        self.site = site or "urllist"
        self.file_gender = gender_from_file_name(self.list_path)

    async def start(self) -> AsyncIterator[Any]:
        """One image request per usable row (bad rows are counted as ``bad-row``)."""
        for row in read_url_list(self.list_path):
            if isinstance(row, tuple):
                if self.shard is not None and self.shard[0] != 0:
                    continue  # shard 0 reports the list's bad rows, once
                count_drop(self.stats, "bad-row")
                self.logger.warning("%s line %d skipped: %s", self.list_path, row[0], row[1])
                continue
            if self.shard is not None and shard_of(row.sha256 or row.url, self.shard[1]) != self.shard[0]:
                continue
            request = self.row_request(row)
            if request is not None:
                yield request

    def row_request(self, row: UrlRow) -> Any:
        """The image request for one row (None when unlabelled, fetched before, or over the cap)."""
        try:
            column_gender = gender_argument(row.gender)
        except ValueError:
            column_gender = None
        gender, label = (
            (column_gender, f"gender column: {row.gender}") if column_gender
            else (self.gender_arg, "argument") if self.gender_arg
            else (self.file_gender, f"list file {self.list_path.name}") if self.file_gender
            else (None, None)
        )
        if gender is None:
            count_drop(self.stats, "no-gender")
            return None
        photo = {
            "site": self.site, "gender": gender, "site_label": label, "person_name": row.name,
            "person_id": row.name, "expected_sha256": row.sha256, "bbox": row.bbox,
            "crop": self.crop and row.bbox is not None, "page_url": None,
            "extra": {"image_id": row.image_id, "face_id": row.face_id, "list_file": self.list_path.name,
                      "list_line": row.line},
        }
        return self.image_request(row.url, person_key=row.name, photo=photo)
