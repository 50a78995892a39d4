"""Named crash points: a test hook that SIGKILLs the process at the n-th passage of a point.

Every durable transition of the project calls :func:`crash_point` right after it is durable, so a
test can kill the process there and check that running the same command again ends where an
uninterrupted run would have (the model is SQLite's crash tests and FoundationDB's BUGGIFY).

Off unless the environment says otherwise; the check is one dictionary look-up when it is off:

- ``ANFE_CRASH_AT=<point>:<n>[,<point>:<n>...]``: ``kill -9`` this process (and nothing else) at
  the n-th passage (from 1) of ``<point>``.
- ``ANFE_CRASH_LOG=<file>``: append each passage's point name, one per line, to ``<file>`` (how
  the crash tests learn how many passages a run makes).

The points (where the call sits):

- ``frontier.add``: requests written to the crawl frontier (a start request, a retry, or a
  parent's children; scraper/frontier.py, scraper/redisfrontier.py);
- ``frontier.commit``: inside the transaction that adds a parent's children and removes the
  parent, before it commits (SQLite only: proves the step is atomic);
- ``frontier.done``: a request removed from the frontier (with its children added, in one step);
- ``crawl.file``: a photo file written under images/ (scraper/pipelines.py);
- ``crawl.record``: a photo's catalog record written (scraper/pipelines.py);
- ``crawl.ledger``: an image URL's final outcome written to the fetch ledger (scraper/ledger.py);
- ``moves.journal``: a mover's journal line fsynced (curation/moves.py);
- ``moves.file``: a file moved (curation/moves.py);
- ``review.decision``: a reviewer's decision appended to the decision log (curation/decisions.py);
- ``cache.batch``: a batch of analyses written to the analysis cache (anfe/faces/cache.py);
- ``review.sync.records``: the catalog sync's record fixes written (status, label, path;
  curation/catalog.py);
- ``review.sync.scores``: the sync's scores and by-person fields written to the records
  (curation/catalog.py, curation/person_summary.py);
- ``review.sync.fingerprint``: the fingerprint of what was scored written (after the scores);
- ``review.sync.stamp``: the folders' stamp written, last (a sync killed before it is redone);
- ``review.thumbnail``: a thumbnail file renamed into place (curation/thumbnails.py);
- ``import.file``: a photo copied into ``images/<gender>/`` (anfe/exchange/importer.py);
- ``import.record``: its catalog record written (anfe/exchange/importer.py).
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "crash_point"]

POINTS = ("frontier.add", "frontier.commit", "frontier.done", "crawl.file", "crawl.record", "crawl.ledger",
          "moves.journal", "moves.file", "review.decision", "cache.batch", "review.sync.records",
          "review.sync.scores", "review.sync.fingerprint", "review.sync.stamp", "review.thumbnail", "import.file",
          "import.record")

_passages: dict[str, int] = {}
_parsed: dict[str, dict[str, int]] = {}


def _targets(spec: str) -> dict[str, int]:
    """``"a:3,b:1"`` -> ``{"a": 3, "b": 1}`` (parsed once per value; a malformed entry is ignored)."""
    if spec not in _parsed:
        targets = {}
        for part in spec.split(","):
            name, _, n = part.strip().rpartition(":")
            if name and n.isdigit():
                targets[name] = int(n)
        _parsed[spec] = targets
    return _parsed[spec]


def crash_point(name: str) -> None:
    """Count one passage of ``name``; SIGKILL this process if ``ANFE_CRASH_AT`` names this passage."""
    at, log = os.environ.get("ANFE_CRASH_AT"), os.environ.get("ANFE_CRASH_LOG")
    if not at and not log:
        return
    n = _passages[name] = _passages.get(name, 0) + 1
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(name + "\n")
    if at and _targets(at).get(name) == n:
        os.kill(os.getpid(), signal.SIGKILL)
