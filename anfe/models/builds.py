"""ANFE centroid builds: draw n single-face images per gender with a recorded seed and average them.

A build is a plain document (lists, no numpy) saved in the store under the paper's ids
(``g_1000`` = 1,000 images per gender; ``g_1000_k16`` = 16 k-means centroids per gender) with
everything needed to redo or audit it: counts, seed, the members' content hashes and their
fingerprint, the embedding model and parameters, the dataset, the held-out test split, the time.

The draw is nested: one seeded permutation per gender, and a build of size n takes its first n
images, so the builds of a sweep differ only by size (a smoother accuracy-vs-size curve).
"""

from __future__ import annotations

import hashlib
import logging
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anfe.core.version import __version__
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.batch import BatchStats, analyse_paths
from anfe.faces.cache import DIMENSIONS, AnalysisCache
from .centroids import (
    AUTO, DEFAULT_K_CANDIDATES, DEFAULT_VALIDATION_FRACTION, GROUP_VARIANTS, K_VARIANTS, NO_GROUP, VARIANTS,
    choose_group_ks, choose_k, fit_gender,
)
from anfe.faces.checks import LABEL_CONFLICT, one_face_reason
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage, by_gender, load_labelled
from anfe.core.errors import DatasetError, MissingGroupError, SizeTooLargeError
from anfe.core.layout import DatasetLayout
from anfe.core.people import PERSON_FIELDS, attach_people
from anfe.core.store import CATALOG_NAME, now_iso, open_store, plain
from .distance import distances
from .splits import count_people, draw_split, gender_rng

log = logging.getLogger(__name__)

ALL = "all"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kK]?)\s*$")
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|=|>|<)\s*(.*?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "=": operator.eq, "!=": operator.ne}


# -- selecting images --------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One ``column OP value`` filter on the labels of a dataset (``age>=17``, ``race=Asian``)."""

    column: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value}"

    def accepts(self, labels: dict[str, str]) -> bool:
        found = labels.get(self.column)
        if found is None or found == "":
            return False
        compare = _OPS[self.op]
        try:
            return compare(float(found), float(self.value))
        except ValueError:
            return compare(found.strip().lower(), self.value.strip().lower())


def parse_where(expression: str) -> Condition:
    """``'age>=17'`` -> Condition('age', '>=', '17'); raises DatasetError on anything else."""
    match = _WHERE.match(expression)
    if not match or not match.group(3) or match.group(3)[0] in "<>=!":
        raise DatasetError(
            f"cannot read the filter {expression!r}: write COLUMN OP VALUE, e.g. age>=17 or race=Asian"
        )
    return Condition(*match.groups())


def apply_filters(items: Sequence[LabelledImage], conditions: Sequence[Condition]) -> list[LabelledImage]:
    """The items whose labels pass every condition; a column no item has is an error."""
    for condition in conditions:
        if condition.column == "gender":
            continue
        if not any(condition.column in item.labels for item in items):
            known = sorted({k for item in items for k in item.labels})
            raise DatasetError(
                f"no image has a {condition.column!r} label to filter on; the labels are: "
                f"{', '.join(known) or 'none (folders carry only the gender)'}"
            )
    kept = [
        item for item in items
        if all(c.accepts({**item.labels, "gender": item.gender}) for c in conditions)
    ]
    if items and not kept:
        raise DatasetError(f"no image passes the filter(s) {', '.join(map(str, conditions))}")
    return kept


def parse_sizes(text: str) -> list[int | str]:
    """``'1000,2K,all'`` -> [1000, 2000, 'all'] (images per gender; 'all' = every usable one)."""
    sizes: list[int | str] = []
    for part in text.split(","):
        if part.strip().lower() == ALL:
            sizes.append(ALL)
            continue
        match = _SIZE.match(part)
        value = int(round(float(match.group(1)) * (1000 if match.group(2) else 1))) if match else 0
        if value < 1:
            raise DatasetError(f"cannot read the size {part!r}: give images per gender such as 1000,2K,all")
        sizes.append(value)
    if not sizes:
        raise DatasetError("no sizes given: e.g. 1000,2000")
    return list(dict.fromkeys(sizes))


def build_id(size: int | str, variant: str = "mean", k: int = 1, prefix: str = "g") -> str:
    """The paper's ids: ``g_1000``; ``g_1000_k16`` for k-means; ``g_all`` for every usable image;
    the group variants: ``g_all_gm`` (group-mean), ``g_all_gc`` (group-centroids), ``g_all_gk4``
    (group-kmeans, 4 per group), ``g_all_ga`` (group-adaptive: a k per group, chosen on validation)."""
    base = f"{prefix}_{size}"
    suffix = {"kmeans": f"_k{k}", "group-mean": "_gm", "group-centroids": "_gc", "group-kmeans": f"_gk{k}",
              "group-adaptive": "_ga"}
    return base + suffix.get(variant, "")


#: Under this many training photos of a gender a build is a toy: in the LFW sweep (docs/build-evaluate.md)
#: held-out balanced accuracy is still far below its plateau at 30 per gender and near it from 100.
MIN_MEANINGFUL_PER_GENDER = 100


def small_build_warning(build: dict) -> str | None:
    """One line when a build holds too few photos of a gender to mean much (None otherwise)."""
    counts = build.get("counts") or {}
    if not counts:
        return None
    gender, fewest = min(counts.items(), key=lambda kv: kv[1])
    if fewest >= MIN_MEANINGFUL_PER_GENDER:
        return None
    return (f"warning: {build.get('id')} holds only {fewest} {gender} photo{'s' if fewest != 1 else ''} "
            f"(under {MIN_MEANINGFUL_PER_GENDER} per gender): a toy whose answers mean little; build from "
            f"{MIN_MEANINGFUL_PER_GENDER}+ photos per gender, or predict without --build (the shipped build)")


# -- the held-out split ------------------------------------------------------------------------
def fingerprint(hashes: Iterable[str]) -> str:
    """SHA-256 of the sorted content hashes, one per line: one string naming a set of images."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode("ascii")).hexdigest()


# -- the usable faces ------------------------------------------------------------------------
@dataclass(frozen=True)
class Skipped:
    """An image that cannot be a member, with the reason (a code of :mod:`anfe.faces.checks`: no-face,
    many-faces, label-conflict, or the error code)."""

    path: str
    gender: str
    reason: str
    detail: str = ""


@dataclass
class EmbeddingPool:
    """The usable training faces: per gender, the content hashes (sorted) and their embeddings."""

    hashes: dict[str, list[str]]
    vectors: dict[str, np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)
    #: The labels of each usable image by content hash (what the group variants group by).
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def groups(self, gender: str, column: str, index: np.ndarray | None = None) -> list[str]:
        """The ``column`` label of the gender's members (all, or those at ``index``), in pool
        order; a member without it is in the group ``(none)``."""
        hashes = self.hashes[gender] if index is None else [self.hashes[gender][i] for i in index]
        return [(self.labels.get(h) or {}).get(column) or NO_GROUP for h in hashes]

    def counts(self) -> dict[str, int]:
        return {g: len(h) for g, h in sorted(self.hashes.items())}

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return dict(sorted(counts.items()))


def pool_from_analyses(items: Sequence[LabelledImage], analyses: dict[str, ImageAnalysis]) -> EmbeddingPool:
    """Keep the images with exactly one face (once per content); record every other one as skipped."""
    found: dict[str, dict[str, np.ndarray]] = {}
    owner: dict[str, str] = {}
    skipped: list[Skipped] = []
    labels: dict[str, dict[str, str]] = {}
    for item in items:
        analysis = analyses[str(item.path)]
        reason = one_face_reason(analysis)
        if reason is None and owner.get(analysis.content_hash, item.gender) != item.gender:
            reason = LABEL_CONFLICT.name
        if reason:
            skipped.append(Skipped(str(item.path), item.gender, reason, analysis.error_detail or ""))
            continue
        owner[analysis.content_hash] = item.gender
        found.setdefault(item.gender, {})[analysis.content_hash] = analysis.single_embedding
        labels.setdefault(analysis.content_hash, dict(item.labels))
    for gender in by_gender(list(items)):
        found.setdefault(gender, {})
    pool = _pool(found, skipped)
    pool.labels = labels
    return pool


def _pool(found: dict[str, dict[str, np.ndarray]], skipped: list[Skipped]) -> EmbeddingPool:
    hashes, vectors = {}, {}
    for gender, table in sorted(found.items()):
        keys = sorted(table)
        hashes[gender] = keys
        vectors[gender] = (
            np.stack([table[h] for h in keys]).astype(np.float64) if keys else np.empty((0, DIMENSIONS))
        )
    return EmbeddingPool(hashes, vectors, skipped)


def single_embeddings(cache: AnalysisCache, digests: Iterable[str]) -> dict[str, np.ndarray | None]:
    """Embedding per cached hash (None when that image holds no face or several), read fast.

    Reads only the embeddings column of the analysis cache, memory-mapped (about 50x faster than
    building full :class:`ImageAnalysis` objects), and scans the table once when the hashes asked
    for are a large part of it. Hashes not in the cache are absent from the result.
    """
    return {
        d: None if blob is None else np.frombuffer(blob, dtype=np.float64)
        for d, blob in cache.single_face_blobs(digests).items()
    }


def pool_from_cache(labels: dict[str, str], cache: AnalysisCache) -> EmbeddingPool:
    """The pool for images known only by content hash -> gender (no files needed), from the cache:
    how a sweep over 100,000 cached images loads in well under a second."""
    blobs = cache.single_face_blobs(labels)
    keys: dict[str, list[str]] = {g: [] for g in sorted(set(labels.values()))}
    skipped = []
    for digest, gender in labels.items():
        blob = blobs.get(digest, b"")
        if blob:
            keys[gender].append(digest)
        else:
            skipped.append(Skipped(digest, gender, "not-cached" if blob == b"" else "not-one-face"))
    hashes, vectors = {}, {}
    for gender, found in keys.items():
        found.sort()
        hashes[gender] = found
        vectors[gender] = np.frombuffer(b"".join(blobs[d] for d in found), dtype=np.float64).reshape(-1, DIMENSIONS)
    return EmbeddingPool(hashes, vectors, skipped)


# -- making builds -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildOptions:
    """How builds are drawn: sizes (images per gender), seed, variant and k, the held-out split,
    and for the fairness variants the group column and how k is chosen (see :mod:`anfe.models.centroids`)."""

    sizes: tuple[int | str, ...] = (1000,)
    seed: int = 0
    variant: str = "mean"
    #: Centroids per gender (kmeans) or per group (group-kmeans), or ``auto``: chosen on validation.
    k: int | str = 16
    test_fraction: float = 0.0
    split_seed: int = 0
    clamp: bool = False
    prefix: str = "g"
    #: ``person``: hold back whole people when the images name them; ``photo``: single photos.
    split_by: str = "person"
    #: The label column the group variants group by, and k=auto scores the worst group of.
    group_by: str | None = None
    #: The k tried when ``k`` is ``auto``.
    k_candidates: tuple[int, ...] = DEFAULT_K_CANDIDATES
    #: The part of the members held out to choose k (k=auto), per gender, drawn with ``seed``.
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    #: More than 1: choose on every member once, across this many folds (cross-validation).
    validation_folds: int = 1

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise DatasetError(f"unknown variant {self.variant!r}: use one of {', '.join(VARIANTS)}")
        if self.k != AUTO and (not isinstance(self.k, int) or self.k < 1):
            raise DatasetError(f"k (centroids per gender) must be at least 1 or 'auto', not {self.k}")
        if self.k == AUTO and self.variant not in K_VARIANTS:
            raise DatasetError(f"k=auto is for the variants {', '.join(K_VARIANTS)}, not {self.variant}")
        if self.variant in GROUP_VARIANTS and not self.group_by:
            raise MissingGroupError(f"the variant {self.variant} needs a group column (such as race)")
        if self.validation_folds < 1:
            raise DatasetError(f"the validation folds must be at least 1, not {self.validation_folds}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise DatasetError(f"the validation fraction must be in (0, 1), not {self.validation_fraction}")
        if self.split_by not in ("person", "photo"):
            raise DatasetError(f"unknown split {self.split_by!r}: use person or photo")


def _resolve_size(size: int | str, available: dict[str, int], clamp: bool,
                  held_out: dict[str, int] | None = None) -> dict[str, int]:
    """Images per gender for one size. ``available`` counts the usable training faces (after the
    held-out split, when there is one: ``held_out`` then says how many were set aside, for the
    message). With ``clamp`` a size larger than the smaller gender takes that gender's count for
    every gender, so ``g_<N>`` always holds N per gender."""
    if size == ALL:
        return dict(available)
    smallest = min(available.values())
    if smallest < int(size) and not clamp:
        have = ", ".join(f"{g} {n}" for g, n in available.items())
        where = (f"left for training after holding out {', '.join(f'{g} {n}' for g, n in held_out.items())} "
                 f"for testing" if held_out else "")
        raise SizeTooLargeError(
            f"size {size} is more than the usable single-face images{' ' + where if where else ''} ({have})"
        )
    if smallest < int(size):
        log.warning("size %s clamped to %d per gender (the usable images: %s)", size, smallest,
                    ", ".join(f"{g} {n}" for g, n in available.items()))
    return {g: min(int(size), smallest) for g in available}


def build_sort_key(build_id: str) -> list:
    """Ids in natural order: g_5, g_10, g_10_k4, g_15, g_all (not g_10, g_15, g_5 as text)."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", build_id))]


#: Members whose distance to their centroid is measured for the recorded working range.
DISTANCE_SAMPLE = 2000


def _distance_summary(vectors: list[np.ndarray], centroids: list[np.ndarray]) -> dict[str, float]:
    nearest = np.concatenate([distances(v, c).min(axis=1) for v, c in zip(vectors, centroids) if len(v)])
    # Keys without dots: MongoDB reads a dot in a field name as a path.
    return {f"p{q:g}".replace(".", "_"): float(np.percentile(nearest, q)) for q in (50, 95, 99, 99.9)} | {
        "max": float(nearest.max()), "sample": int(len(nearest)),
    }


class _Draws:
    """Everything a sweep shares between its builds: one seeded permutation per gender, the
    embeddings in that order, and all hashes in one sorted array (for fast fingerprints)."""

    def __init__(self, pool: EmbeddingPool, seed: int) -> None:
        self.order = {g: gender_rng(seed, g).permutation(len(h)) for g, h in pool.hashes.items()}
        self.permuted = {g: pool.vectors[g][o] for g, o in self.order.items()}
        self.names = {g: np.array(h, dtype=object) for g, h in pool.hashes.items()}
        every = np.sort(np.array([x for h in pool.hashes.values() for x in h], dtype="S64"))
        self.position = {g: np.searchsorted(every, np.array(h, dtype="S64")) for g, h in pool.hashes.items()}
        # Each hash as one 65-byte line "<hash>\n", in sorted order.
        self.lines = np.hstack([every.view(np.uint8).reshape(len(every), 64),
                                np.full((len(every), 1), ord("\n"), dtype=np.uint8)])

    def chosen(self, gender: str, n: int) -> np.ndarray:
        """Indices (into the sorted hashes) of the first n of the permutation, ascending."""
        return np.sort(self.order[gender][:n])

    def fingerprint(self, chosen: dict[str, np.ndarray]) -> str:
        """Same value as :func:`fingerprint` on the members, without sorting strings in Python."""
        index = np.sort(np.concatenate([self.position[g][c] for g, c in chosen.items()]))
        text = self.lines[index].tobytes()
        return hashlib.sha256(memoryview(text)[:-1]).hexdigest()  # no newline after the last

    def means(self, gender: str, sizes: Iterable[int]) -> dict[int, np.ndarray]:
        """Mean embedding (shape (1, 128)) of the first n drawn members, for each n: the sums of
        the blocks between consecutive sizes are added up, so the whole sweep reads each
        embedding once."""
        out, total, done = {}, np.zeros(self.permuted[gender].shape[1]), 0
        for n in sorted(set(sizes)):
            total = total + self.permuted[gender][done:n].sum(axis=0)
            done = n
            out[n] = (total / n)[None, :]
        return out


def build_from_pool(
    pool: EmbeddingPool,
    options: BuildOptions,
    embedding_model: dict[str, Any],
    dataset: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
) -> list[dict]:
    """One build document per size (plain lists and numbers, ready for ``store.save_build``).

    The recorded ``member_distance`` (the working range used by ``predict``) is measured on up
    to :data:`DISTANCE_SAMPLE` members per gender, a random sample since the draw is random.
    """
    available = pool.counts()
    empty = [g for g, n in available.items() if n == 0]
    if empty:
        raise DatasetError(
            f"no usable single-face image for {', '.join(empty)} (skipped: {pool.skipped_counts()}); "
            "check that folder holds photos with exactly one face"
        )
    if len(available) < 2:
        raise DatasetError(f"a build needs at least two genders, found only {', '.join(available) or 'none'}")
    draws = _Draws(pool, options.seed)
    shared = {
        "embedding_model": plain(embedding_model), "dataset": plain(dataset or {}), "split": plain(split),
        "created": now_iso(), "anfe_version": __version__,
    }
    k = options.k if options.variant in K_VARIANTS else 1
    if options.group_by and options.variant in (*GROUP_VARIANTS, "kmeans") and not any(
            options.group_by in (pool.labels.get(h) or {}) for hs in pool.hashes.values() for h in hs):
        raise DatasetError(f"no training image has a {options.group_by!r} label to group by")
    held_out = (split or {}).get("test_counts")
    plans: list[tuple[int | str, dict[str, int]]] = []
    for size in options.sizes:
        counts = _resolve_size(size, available, options.clamp, held_out)
        if size != ALL and any(n < int(size) for n in counts.values()):
            size = min(counts.values())  # clamped: the id says what the build holds
        if any(size == done for done, _ in plans):
            log.warning("size %s appears twice after clamping: one build %s", size, build_id(size, options.variant, k, options.prefix))
            continue
        plans.append((size, counts))
    means = {g: draws.means(g, [c[g] for _, c in plans]) for g in available} if options.variant == "mean" else {}
    builds = []
    for size, counts in plans:
        chosen = {g: draws.chosen(g, n) for g, n in counts.items()}
        groups = ({g: pool.groups(g, options.group_by, c) for g, c in chosen.items()}
                  if options.group_by and options.variant != "mean" else None)
        k_used, k_doc, k_map = k, None, None
        if k == AUTO or options.variant == "group-adaptive":
            vectors = {g: pool.vectors[g][c] for g, c in chosen.items()}
            if options.variant == "group-adaptive":
                choice = choose_group_ks(vectors, groups, options.k_candidates, options.validation_fraction,
                                         options.seed, options.validation_folds)
            else:
                choice = choose_k(vectors, groups, options.variant, options.k_candidates,
                                  options.validation_fraction, options.seed, options.validation_folds)
            k_used, k_doc, k_map = choice.chosen, choice.to_doc(), choice.per_group
        centroids, samples = {}, []
        for gender, n in counts.items():
            if options.variant == "mean":
                centroids[gender] = means[gender][n]
            else:
                vectors = pool.vectors[gender][chosen[gender]]
                centroids[gender] = fit_gender(vectors, groups[gender] if groups else None, options.variant,
                                               int(k_used), options.seed, k_map)
            samples.append(draws.permuted[gender][: min(n, DISTANCE_SAMPLE)])
        doc = {
            "id": build_id(size, options.variant, k_used, options.prefix),
            "variant": options.variant,
            "k": k_used,
            "size": size,
            "counts": counts,
            "seed": options.seed,
            "fingerprint": draws.fingerprint(chosen),
            "members": {g: draws.names[g][c].tolist() for g, c in chosen.items()},
            "centroids": {g: c.tolist() for g, c in centroids.items()},
            "member_distance": _distance_summary(samples, list(centroids.values())),
            **shared,
        }
        if groups is not None:
            doc["group_by"] = options.group_by
            doc["group_counts"] = {g: {v: groups[g].count(v) for v in sorted(set(groups[g]))} for g in groups}
        if k_doc is not None:
            doc["k_choice"] = k_doc
        if k_map is not None:
            doc["k_per_group"] = dict(k_map)
        builds.append(doc)
    return builds


def params_from_build(build: dict) -> AnalysisParams:
    """The analysis parameters that made a build's embeddings (evaluate and predict reuse them)."""
    model = build.get("embedding_model") or {}
    names = ("detector", "upsample", "max_side", "jitters", "max_pixels", "detect", "min_face", "min_face_share")
    found = {n: model[n] for n in names if n in model}
    found.setdefault("detect", "exact")  # builds recorded before the size policy scanned every scale
    return AnalysisParams(**found)


def builds_from_analyses(
    items: Sequence[LabelledImage],
    analyses: dict[str, ImageAnalysis],
    options: BuildOptions,
    params: AnalysisParams,
    dataset: dict[str, Any] | None = None,
) -> list[dict]:
    """Split off the test part (if asked: whole people when the items name them, see
    :func:`anfe.models.splits.draw_split`), pool the single-face training images, make the builds."""
    split_doc = None
    train = list(items)
    if options.test_fraction > 0:
        hashes: dict[str, list[str]] = {}
        person_of: dict[str, str | None] = {}
        for item in items:
            digest = analyses[str(item.path)].content_hash
            if digest:
                hashes.setdefault(item.gender, []).append(digest)
                person_of[digest] = person_of.get(digest) or item.person
        test, by = draw_split(hashes, person_of, options.test_fraction, options.split_seed, options.split_by)
        held = {h for part in test.values() for h in part}
        train = [i for i in items if analyses[str(i.path)].content_hash not in held]
        split_doc = {
            "seed": options.split_seed,
            "test_fraction": options.test_fraction,
            "by": by,
            "test": test,
            "test_counts": {g: len(t) for g, t in test.items()},
            "fingerprint": fingerprint(held),
        }
        if by == "person":
            split_doc["test_people"] = {g: count_people(t, person_of) for g, t in test.items()}
    pool = pool_from_analyses(train, analyses)
    dataset = {**(dataset or {}), "images": len(items), "usable": pool.counts(), "skipped": pool.skipped_counts()}
    return build_from_pool(pool, options, params.embedding_model, dataset, split_doc)


@dataclass
class BuildRun:
    """What :func:`make_builds` made: the build documents, how many images it read, and how many
    of their analyses came from the cache."""

    builds: list[dict]
    images: int
    stats: BatchStats


def load_items(source: str | Path | None, labels: str | Path | None = None,
               conditions: Sequence[Condition] = (),
               records: Iterable[dict[str, Any]] | None = None) -> list[LabelledImage]:
    """The labelled images of a dataset (root, folder of label folders or labels CSV), filtered.

    The images of a dataset root get their person (see :mod:`anfe.core.people`) from ``records``,
    else from the root's own catalog when it has one: a crawl records who each photo shows.
    """
    if source is None and labels is None:
        raise DatasetError("no dataset given: a folder of label folders, a dataset root, or a labels CSV")
    items = load_labelled(source if source is not None else labels, labels)
    if labels is None and source is not None and DatasetLayout(Path(source)).is_dataset_root():
        if records is None and (Path(source) / CATALOG_NAME).is_file():
            with open_store(None, source) as store:
                records = store.find_images(fields=PERSON_FIELDS)
        if records is not None:
            items = attach_people(items, records)
    return apply_filters(items, conditions) if conditions else items


def make_builds(
    items: Sequence[LabelledImage],
    options: BuildOptions,
    params: AnalysisParams,
    cache: AnalysisCache | None,
    workers: int = 1,
    *,
    dataset: dict[str, Any] | None = None,
    progress: bool = True,
) -> BuildRun:
    """The one way to make builds (``anfe build`` and ``anfe demo`` both call it): analyse the
    images (cached), then one build per size of ``options``; see :func:`builds_from_analyses`.
    ``dataset`` describes where the images came from (recorded in every build)."""
    if not items:
        raise DatasetError("no images to build from")
    analyses, stats = analyse_paths([i.path for i in items], params, cache, workers, progress)
    return BuildRun(builds_from_analyses(items, analyses, options, params, dataset), len(items), stats)


def summary(build: dict) -> dict:
    """A build without its long lists (members, centroids, split hashes): what people read."""
    brief = {k: v for k, v in build.items() if k not in ("members", "centroids")}
    if build.get("split"):
        brief["split"] = {k: v for k, v in build["split"].items() if k != "test"}
    brief["centroids_per_gender"] = {g: len(c) for g, c in build.get("centroids", {}).items()}
    return brief


__all__ = [
    "ALL", "BuildOptions", "BuildRun", "Condition", "EmbeddingPool", "Skipped", "VARIANTS", "apply_filters",
    "build_from_pool", "build_id", "build_sort_key", "builds_from_analyses", "fingerprint", "load_items", "make_builds",
    "params_from_build", "parse_sizes", "parse_where", "pool_from_analyses", "pool_from_cache",
    "single_embeddings", "small_build_warning", "summary", "MIN_MEANINGFUL_PER_GENDER",
]
