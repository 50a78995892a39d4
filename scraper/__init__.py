"""The harvester: Scrapy spiders and pipelines that fill a dataset root's per-gender folders.

Layer rule: ``scraper`` imports ``anfe`` (and may import ``curation``); nothing imports ``scraper``.
"""
