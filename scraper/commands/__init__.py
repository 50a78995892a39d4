"""Scrapy commands of this project (``COMMANDS_MODULE``): ``scrapy crawl`` with the same checks
before and after the crawl as ``anfe crawl``."""
