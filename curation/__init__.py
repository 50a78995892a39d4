"""Curation of a dataset root: automatic filters, duplicate detection, quarantine and review.

Builds on :mod:`anfe` (analysis pass, cache, store); nothing here is imported by ``anfe``.
"""
