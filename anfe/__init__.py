"""ANFE: Average Neural Face Embeddings for gender recognition (Makinist, Ay and Aydin, 2020).

Face analysis over dlib, an embeddings cache, centroid builds, evaluation, prediction and the
store. This package knows nothing of Scrapy or Streamlit. Rooms by job, each importing only
those below it: :mod:`anfe.cli` (the command line), :mod:`anfe.models` (builds, evaluation,
prediction, reports), :mod:`anfe.faces` (detection, encoders, analysis, cache, executors) and
:mod:`anfe.core` (layout, store, errors, configuration). The four functions below
(:mod:`anfe.api`) are the small public API; they load lazily, so ``import anfe`` loads no model.
"""

from anfe.core.version import __version__

__all__ = ["__version__", "analyse", "embed", "load_build", "predict"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    """``anfe.analyse`` and friends, imported from :mod:`anfe.api` on first use."""
    if name in _API:
        from anfe import api

        return getattr(api, name)
    raise AttributeError(f"module 'anfe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
