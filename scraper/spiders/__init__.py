"""The spiders: ``listal`` and ``filmweb`` (driven by site profiles) and ``urllist`` (FaceScrub lists)."""

from .profiled import FilmwebSpider, ListalSpider
from .urllist import UrlListSpider

#: The spider classes by name, as `scrapy list` shows them.
SPIDERS = {cls.name: cls for cls in (ListalSpider, FilmwebSpider, UrlListSpider)}

__all__ = ["SPIDERS", "FilmwebSpider", "ListalSpider", "UrlListSpider"]
