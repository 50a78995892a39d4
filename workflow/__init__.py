"""The whole flow in one place: crawl the local demo site, clean, build, evaluate, report."""
