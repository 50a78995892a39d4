"""The spiders: ``listal`` and ``filmweb`` (driven by site profiles) and ``urllist`` (FaceScrub lists)."""

from .profiled import FilmwebSpider, ListalSpider
from .urllist import UrlListSpider

__all__ = ["FilmwebSpider", "ListalSpider", "UrlListSpider"]
