"""``anfe site`` (generate and serve the local demo site), ``anfe crawl`` (run a spider) and
``anfe profile`` (export the profile schema, try a profile on one page)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from anfe.cli.common import friendly_errors, store_option
from anfe.core.layout import write_atomically

from .demosite import DemoServer, SiteSpec, generate_site, url_list_for
from .demosite.generate import MANIFEST, MAX_LIST_PEOPLE, MAX_PEOPLE
from .demosite.urllist import LIST_FILES
from .errors import CrawlFailedError
from .extensions import closing_summary, crawl_outcome
from .parallel import merge_stats, read_reports, run_shards, shard_plan
from .preflight import check_before_crawl
from .profile_check import KINDS, check_profile_page, fetch_page, read_saved_page
from .profile_schema import SCHEMA, key_table
from .profiles import load_profile
from .spiders.base import NO_CONTACT

_SPIDERS = ("listal", "filmweb", "urllist")
_FAST = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
         "CONCURRENT_REQUESTS": 32, "BACKOFF_DELAY": 0}


@click.group()
def site() -> None:
    """The local demo site: a listal-style and a filmweb-style site plus FaceScrub-style URL
    lists, built from any labelled photos, with the traps a real crawl meets (robots.txt,
    404s, redirects, a login page instead of an image, broken images, duplicates, a person
    with no gender). Crawl it to try the spiders without touching a real site."""


@site.command("generate")
@click.option("--from", "labels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels CSV of the photos (path,gender[,identity]); e.g. ../shared/data/faces/lfw/labels.csv. "
                   "With an identity column people are real; without, photos are grouped into synthetic people.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the site (created; an earlier generated site there is replaced).")
@click.option("--people", default=6, show_default=True, type=click.IntRange(2, MAX_PEOPLE),
              help="People with a stated gender per site style (plus one without). The source must hold enough: "
                   "with an identity column, that many people with --photos usable photos each; without, "
                   "enough photos to group into synthetic people. Too few is a one-line error.")
@click.option("--photos", default=3, show_default=True, type=click.IntRange(1, 100), help="Photos per person.")
@click.option("--per-page", default=2, show_default=True, type=click.IntRange(1, 100),
              help="Entries per list/gallery page (small values exercise pagination).")
@click.option("--seed", default=0, show_default=True, help="Which people are picked.")
@click.option("--list-people", default=SiteSpec.list_people, show_default=True, type=click.IntRange(2, MAX_LIST_PEOPLE),
              help="People with a stated gender on the load-more list /listal/list/popular-people (plus one without).")
@click.option("--list-photos", default=SiteSpec.list_photos, show_default=True, type=click.IntRange(1, 100),
              help="Photos per person of the load-more list.")
@click.option("--list-first", default=SiteSpec.list_first, show_default=True, type=click.IntRange(1, None),
              help="People the load-more list's HTML shows; the rest come through POST /listal/item-list/.")
@click.option("--list-chunk", default=SiteSpec.list_chunk, show_default=True, type=click.IntRange(1, None),
              help="People per /listal/item-list/ answer.")
@click.option("--plant-wrong-person", default=0, show_default=True, type=click.IntRange(0, MAX_PEOPLE),
              help="Give this many listal-style galleries one photo of another person of the same gender "
                   "(listed in the manifest under planted).")
@click.option("--flip-people", default=0, show_default=True, type=click.IntRange(0, MAX_PEOPLE),
              help="List this many listal-style people under the other gender (listed in the manifest).")
@friendly_errors
def generate(labels: Path, out: Path, people: int, photos: int, per_page: int, seed: int, list_people: int,
             list_photos: int, list_first: int, list_chunk: int, plant_wrong_person: int, flip_people: int) -> None:
    """Build the demo site in OUT from labelled photos (copied byte for byte) and write its
    manifest.json: what a correct crawl of each part must produce (listal, listal-more, filmweb,
    filmweb-api, render, urllist; the profile each is crawled with is in the manifest), and what
    was planted (--plant-wrong-person, --flip-people)."""
    spec = SiteSpec(people=people, photos=photos, per_page=per_page, seed=seed, list_people=list_people,
                    list_photos=list_photos, list_first=list_first, list_chunk=list_chunk,
                    wrong_person=plant_wrong_person, flip_people=flip_people)
    manifest = generate_site(labels, out, spec=spec)
    for name, expect in manifest["spiders"].items():
        images = ", ".join(f"{g} {n}" for g, n in expect["images"].items())
        drops = ", ".join(f"{r} {n}" for r, n in expect["dropped"].items())
        click.echo(f"{name}: expect {images}; drops: {drops}")
    planted = manifest["spiders"]["listal"].get("planted") or {}
    for entry in planted.get("wrong_person", []):
        click.echo(f"planted: a photo of {entry['true_person']} in the gallery of {entry['person']}")
    for entry in planted.get("flipped_people", []):
        click.echo(f"planted: {entry['person']} ({entry['true_gender']}) listed as {entry['listed_as']}")
    click.echo(f"site written to {out} (manifest: {out / MANIFEST}); serve it with `anfe site serve {out}`")


@site.command("serve")
@click.argument("site_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 = a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback address only: any other address is refused.")
@friendly_errors
def serve(site_dir: Path, port: int, host: str) -> None:
    """Serve a generated demo site on 127.0.0.1 until Ctrl-C, and print the crawl commands."""
    server = DemoServer(site_dir, host=host, port=port)
    written = [url_list_for(site_dir, name, server.base_url, site_dir / name) for name in LIST_FILES]
    click.echo(f"serving {site_dir} at {server.base_url} (Ctrl-C stops)")
    click.echo(f"URL lists with this address: {', '.join(str(p) for p in written)}")
    click.echo("try:")
    for line in serve_commands(site_dir, server.base_url):
        click.echo(f"  {line}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")


def serve_commands(site_dir: Path, base_url: str, root: str = "./data") -> list[str]:
    """The crawl commands ``site serve`` suggests (the README's, with the real address)."""
    return [
        f"anfe crawl listal --root {root} --fast -a profile=demo-listal -a base_url={base_url}",
        f"anfe crawl listal --root {root} --fast -a profile=demo-listal-more -a base_url={base_url}",
        f"anfe crawl filmweb --root {root} --fast -a profile=demo-filmweb -a base_url={base_url}",
        f"anfe crawl filmweb --root {root} --fast -a profile=demo-filmweb-api -a base_url={base_url}",
        f"anfe crawl filmweb --root {root} --fast -a profile=demo-render -a base_url={base_url}",
        f"anfe crawl urllist --root {root} --fast -a file={site_dir / LIST_FILES[0]}",
    ]


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint=option)
        pairs[name] = rest
    return pairs


def check_redis(url: str) -> None:
    """Fail with one line, before Scrapy starts, when the Redis URL is wrong or the server is down."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter(f"{url!r} is not a redis://HOST:PORT/DB URL", param_hint="--redis")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot reach Redis at {url}: {exc}; start redis-server there "
                                   "or fix --redis") from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("spider", type=click.Choice(_SPIDERS))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("./data"),
              show_default=True, help="Dataset root: photos go to ROOT/images/<gender>/<sha256>.<ext>.")
@store_option
@click.option("-a", "spider_args", multiple=True, metavar="NAME=VALUE",
              help="Spider argument, as `scrapy crawl -a`: profile=listal|filmweb|filmweb-api|demo-listal|"
                   "demo-listal-more|demo-filmweb|demo-filmweb-api|demo-render|demo-board|demo-trap|PATH.json, start_url=URL[,URL], base_url=URL, gender=female|male, file=LIST.txt, crop=1, shard=K/N, "
                   "max_images_per_person=N.")
@click.option("-s", "settings_", multiple=True, metavar="NAME=VALUE",
              help="Scrapy setting, as `scrapy crawl -s` (e.g. CURATION_GATE=1, MIN_IMAGE_WIDTH=200).")
@click.option("--jobdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the crawl's frontier here (DIR/frontier.sqlite): after Ctrl-C, a crash or kill -9, "
                   "run the same command to resume; nothing is lost.")
@click.option("--redis", "redis_url", default=None, metavar="URL", envvar="ANFE_REDIS",
              help="redis://HOST:6379/0: share one frontier and fetch ledger with every other "
                   "`anfe crawl --redis` of this crawl, on this machine or others.")
@click.option("--contact", default=None, help="Your e-mail or URL, sent in the User-Agent.")
@click.option("--fast", is_flag=True,
              help="Politeness off (no delay, no AutoThrottle, 16 requests at once): only for your own "
                   "or local sites such as `anfe site serve`.")
@click.option("--max-pages", type=click.IntRange(1, None), default=None,
              help="Page budget: no page request past it (default: the profile's limits.max_pages, else "
                   "MAX_PAGES, 1,000,000). The summary says when it stopped the crawl.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="urllist only: split the list over N processes (one per core is a good start), each a "
                   "crawl of its shard into ROOT; one summary at the end. Resume a killed run with the same command.")
@click.option("-v", "--verbose", is_flag=True,
              help="Show Scrapy's log here, as `scrapy crawl` does (default: one progress line and the "
                   "summary; the log goes to ROOT/crawl_reports/<spider>-<time>.log).")
@friendly_errors
def crawl(spider: str, root: Path, db: str | None, spider_args: tuple[str, ...], settings_: tuple[str, ...],
          jobdir: Path | None, redis_url: str | None, contact: str | None, fast: bool, max_pages: int | None,
          processes: int, verbose: bool) -> None:
    """Run SPIDER (listal, filmweb or urllist) into the dataset root ROOT, like `scrapy crawl`.

    The shipped listal and filmweb profiles were written from public scrapers and saved pages
    and were NOT run against the live sites: check them first. Shipped profiles: listal, filmweb,
    filmweb-api, and the demo site's demo-listal, demo-listal-more, demo-filmweb, demo-filmweb-api,
    demo-render, demo-board, demo-trap; or -a profile=PATH.json for another site (check it first
    with `anfe profile check`). A profile step may POST "load more" requests, read JSON (also JSON
    embedded in a page), or be rendered in Debian's Chromium (see docs/crawl.md).
    Re-running a finished crawl downloads no image again; a summary (pages, images per gender,
    drops by reason, the worst steps) is printed and written to ROOT/crawl_reports/.

    Exit codes: 0 complete; 1 nothing was got; 3 finished with page errors, required selectors
    that matched nothing, or a budget that stopped it (see docs/crawl.md).
    """
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from .spiders import SPIDERS

    args = _pairs(spider_args, "-a")
    overrides = _pairs(settings_, "-s")
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "scraper.settings")
    settings = get_project_settings()
    settings.set("DATASET_ROOT", str(root), priority="cmdline")
    if db:
        settings.set("STORE_URI", db, priority="cmdline")
    if jobdir:
        settings.set("JOBDIR", str(jobdir), priority="cmdline")
    if redis_url:
        if jobdir:
            raise click.UsageError("--redis keeps the crawl's frontier in Redis: drop --jobdir")
        check_redis(redis_url)
        settings.set("REDIS_URL", redis_url, priority="cmdline")
    if contact:
        settings.set("CONTACT", contact, priority="cmdline")
    if fast:
        for name, value in _FAST.items():
            settings.set(name, value, priority="cmdline")
    if max_pages:
        settings.set("MAX_PAGES", max_pages, priority="cmdline")
    log_file = None
    if not verbose:  # quiet: Scrapy's log to a file, a progress line and the summary here
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        log_file = root / "crawl_reports" / f"{spider}-{stamp}.log"
        settings.set("LOG_FILE", str(log_file), priority="cmdline")
        settings.set("CRAWL_REPORT", str(log_file.with_suffix(".json")), priority="cmdline")
        settings.set("CONSOLE_SUMMARY", True, priority="cmdline")
        settings.set("PROGRESS_INTERVAL", 1.0, priority="cmdline")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    check_before_crawl(SPIDERS[spider], args, settings)  # one line, before Scrapy's log starts
    if processes > 1:
        if spider != "urllist" or redis_url or verbose or "shard" in args:
            raise click.UsageError("--processes splits a URL list (urllist) without --redis or -v; to share a "
                                   "site crawl among processes, start one `anfe crawl --redis URL` per process")
        base = [sys.executable, "-m", "anfe", "crawl", spider, "--root", str(root), *(["--db", db] if db else []),
                *(["--contact", contact] if contact else []), *(["--fast"] if fast else []),
                *(["--max-pages", str(max_pages)] if max_pages else []),
                *(part for arg in spider_args for part in ("-a", arg)),
                *(part for setting in settings_ for part in ("-s", setting))]
        run_in_processes(base, processes, root, jobdir, int(settings.getint("DEPTH_LIMIT", 0)))
        return
    for handler in list(logging.root.handlers):  # Scrapy installs its own log handler (LOG_LEVEL)
        logging.root.removeHandler(handler)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        click.echo(f"Scrapy's log: {log_file}", err=True)
        if "set CONTACT" in settings.get("USER_AGENT", "") and not fast:  # a real site: say who crawls
            click.echo(f"Warning: {NO_CONTACT}", err=True)  # the log's copy is in the file: say it here too
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(spider)
    process.crawl(crawler, **args)
    process.start()
    if crawler.stats.get_value("finish_reason") is None:
        raise click.ClickException(f"the crawl did not start: see the error in {log_file or 'the log above'}")
    finish(spider, root, crawler.stats.get_stats())


def finish(spider: str, root: Path, stats: dict) -> None:
    """The last line of a crawl, and its exit code (see the crawl command's help)."""
    store_error = stats.get("anfe/store_error")
    if store_error:
        raise CrawlFailedError(f"the crawl stopped: {store_error}; once the store is back, run the same "
                               "command again: it fetches and records what this run could not")
    code, problem = crawl_outcome(stats)
    if code == 1:
        raise CrawlFailedError(problem)
    click.echo(f"{spider}: {stats.get('anfe/images/stored', 0)} new images in {root / 'images'} (see the summary above)")
    if code:
        click.echo(f"Warning: {problem}; exit {code}", err=True)
        sys.exit(code)


def run_in_processes(base: list[str], processes: int, root: Path, jobdir: Path | None, depth_limit: int) -> None:
    """``anfe crawl urllist --processes N``: the shards at once, then one summary (see scraper.parallel)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    plan = shard_plan(base, processes, root / "crawl_reports", stamp, jobdir)
    run_shards(plan, root, lambda line: click.echo(line, err=True))
    stats = merge_stats(read_reports(plan))
    summary, lines = closing_summary("urllist", str(stats.get("finish_reason")), stats, depth_limit)
    click.echo("\n".join(lines))
    report = {"spider": "urllist", "summary": summary, "stats": stats, "shards": [str(s.report) for s in plan]}
    write_atomically(root / "crawl_reports" / f"urllist-{stamp}.json", json.dumps(report, indent=2).encode("utf-8"))
    finish("urllist", root, stats)


@click.group()
def profile() -> None:
    """Site profiles: export their JSON Schema, or try one on a single page before a crawl."""


@profile.command("schema")
@click.option("--markdown", is_flag=True, help="Print the table of keys (as in docs/crawl.md) instead.")
def schema(markdown: bool) -> None:
    """Print the profiles' JSON Schema (point an editor's "$schema" at the saved file)."""
    click.echo(key_table() if markdown else json.dumps(SCHEMA, indent=2), nl=not markdown)


@profile.command("check")
@click.argument("profile_name", metavar="PROFILE")
@click.option("--url", default=None, help="Fetch this page (one GET, with the crawl's user agent).")
@click.option("--file", "saved", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read a saved HTML or JSON page instead of fetching one (give --url too to resolve its links).")
@click.option("--kind", type=click.Choice(KINDS), default="list", show_default=True,
              help="Which step the page is: a list, a person page, a gallery page or a view page.")
@friendly_errors
def check(profile_name: str, url: str | None, saved: Path | None, kind: str) -> None:
    """Show what each selector of PROFILE's step extracts from one page, like `scrapy parse`,
    and warn on the required ones that match nothing (exit 3 when one does)."""
    if not url and not saved:
        raise click.UsageError("give --url URL (fetched) or --file PAGE (a saved page)")
    site = load_profile(profile_name)
    page = read_saved_page(saved, url) if saved else fetch_page(url or "")
    lines, warnings = check_profile_page(site, kind, page)
    for line in lines:
        click.echo(line)
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    if warnings:
        sys.exit(3)
