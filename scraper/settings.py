"""Scrapy settings of the harvester: careful, polite defaults; every project setting documented here.

Override any of them per run: ``scrapy crawl listal -s DATASET_ROOT=./data -s DOWNLOAD_DELAY=2``.
"""

BOT_NAME = "anfe-faces"
SPIDER_MODULES = ["scraper.spiders"]
NEWSPIDER_MODULE = "scraper.spiders"
#: `scrapy crawl` checks its -a arguments and the store first, and fails when every request failed.
COMMANDS_MODULE = "scraper.commands"

# -- where photos go ------------------------------------------------------------------------
#: The dataset root: photos land in <DATASET_ROOT>/images/<gender>/<sha256>.<ext>.
DATASET_ROOT = "./data"
#: The store (catalog) URI; empty = the embedded SQLite file <DATASET_ROOT>/catalog.sqlite.
#: mongodb://host:27017/anfe uses MongoDB.
STORE_URI = ""
#: The crawl's JSON report; empty = <DATASET_ROOT>/crawl_reports/<spider>-<time>.json.
CRAWL_REPORT = ""

# -- several processes or machines on one crawl ---------------------------------------------
#: redis://HOST:6379/0 puts the frontier (scrapy-redis's queue and dupefilter, plus in-flight
#: tracking) and the fetch ledger in Redis, shared by every `anfe crawl --redis` of the crawl.
REDIS_URL = ""
#: Key prefix in Redis (one prefix, or one database, per crawl).
REDIS_KEY_PREFIX = "anfe"
#: A process silent this many seconds counts as stopped: another one takes back its requests.
REDIS_WORKER_TTL = 15.0
#: Requests a process claims from the shared queue at once (only when it has a free slot).
REDIS_CLAIM_BATCH = 2
#: Seconds between looks at the shared queue by a process with free slots.
REDIS_POLL_INTERVAL = 0.05
#: Several local processes writing one dataset root (`anfe crawl urllist --processes N` sets it):
#: one writer per content hash among them, through <DATASET_ROOT>/crawl_claims.sqlite.
LOCAL_CLAIMS = False

# -- what is kept ---------------------------------------------------------------------------
#: Smaller photos are dropped as "too-small" (the threshold of anfe.faces.checks.TOO_SMALL, as in `anfe clean`).
MIN_IMAGE_WIDTH = 64
MIN_IMAGE_HEIGHT = 64
#: More pixels than this are refused from the header, never decoded ("too-many-pixels").
MAX_IMAGE_PIXELS = 80_000_000
#: At most this many photos per person (0 = no cap).
MAX_IMAGES_PER_PERSON = 200
#: Also drop photos that fail no-face, many-faces or small-face (runs dlib on each photo); small-face
#: has the thresholds of anfe.faces.checks.SMALL_FACE, as in `anfe clean`: eye distance and box side (0 = off).
CURATION_GATE = False
MIN_EYE_DISTANCE = 20.0
MIN_FACE_SIDE = 0
#: The analysis cache the gate reads and fills; empty = $ANFE_CACHE or ~/.cache/anfe/analysis.sqlite.
ANALYSIS_CACHE = ""

# -- politeness -----------------------------------------------------------------------------
#: Who we are and how to reach whoever runs the crawl: set CONTACT to an e-mail or a URL.
CONTACT = "set CONTACT to your e-mail or URL"
USER_AGENT = f"anfe-faces/0.1 (+{CONTACT})"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
DOWNLOAD_DELAY_JITTER = 0.5
DOWNLOAD_TIMEOUT = 60
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
#: Retries on server errors and timeouts (Scrapy retries connection errors and timeouts too).
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
#: On 429/503 (403 too with BACKOFF_ON_403) wait BACKOFF_DELAY s between requests to that site
#: (scrapers of listal back off 60 s: it sits behind an anti-bot service). 0 = off.
BACKOFF_DELAY = 60.0
BACKOFF_MAX_DELAY = 300.0
BACKOFF_ON_403 = False
#: The HTTP cache (off by default): -s HTTPCACHE_ENABLED=1 replays responses from
#: <DATASET_ROOT>/httpcache (unless HTTPCACHE_DIR is given).
HTTPCACHE_ENABLED = False
HTTPCACHE_EXPIRATION_SECS = 7 * 24 * 3600
HTTPCACHE_IGNORE_HTTP_CODES = [403, 429, 500, 502, 503, 504]

# -- bounds of a crawl (a profile's "limits" may set them; the command line wins) -------------
#: The page budget: no page request past it (`anfe crawl --max-pages`). A real site never needs more.
MAX_PAGES = 1_000_000
#: Links deeper than this (list -> next -> ... -> person -> gallery -> image) are not followed.
DEPTH_LIMIT = 1000
#: A `next` chain whose pages bring nothing new this many times in a row stops, with a warning.
STALL_PAGES = 5

# -- pages that need a browser ----------------------------------------------------------------
#: Steps of a profile with "render": true go through scrapy-playwright driving this Chromium
#: (Debian's package; nothing is downloaded). The handler is switched on only for such profiles.
CHROMIUM_PATH = "/usr/bin/chromium"
#: Seconds a rendered page may take to show a step's "wait_for" selector.
RENDER_WAIT_TIMEOUT = 15.0

# -- pipelines, middlewares, extensions ---------------------------------------------------
#: The pipelines are coroutines on asyncio's loop (Scrapy's default reactor, named here because
#: they need it): hashing, decoding and file writes go to a thread pool, records are group-committed.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
#: Threads that hash, decode, crop, analyse and write photos off the event loop (0 = one per CPU).
PIPELINE_THREADS = 0
#: Outputs of one response handled at once. Scrapy's 100 starts 100 tasks for every response, a
#: measurable cost when each image response yields one item; the pipelines' threads do the work.
CONCURRENT_ITEMS = 16
ITEM_PIPELINES = {
    "scraper.pipelines.ImageCheckPipeline": 100,
    "scraper.pipelines.CurationGatePipeline": 200,
    "scraper.pipelines.DatasetWriterPipeline": 300,
}
#: A request leaves the frontier only in one atomic step with its children (see scraper/frontier.py): with JOBDIR
#: it lives in <JOBDIR>/frontier.sqlite, so a crawl killed at any moment resumes losing nothing.
SCHEDULER = "scraper.frontier.DurableScheduler"
SPIDER_MIDDLEWARES = {
    "scraper.frontier.FrontierMiddleware": 5,
    # an exception in a callback is a counted page error with its URL, in one log line
    "scraper.pageerrors.PageErrorMiddleware": 950,
}
DOWNLOADER_MIDDLEWARES = {
    # Scrapy's, fixed: requests waiting for a site's robots.txt all get its rules (see the class).
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scraper.middlewares.RobotsTxtMiddleware": 100,
    "scraper.middlewares.BackoffMiddleware": 560,
    "scraper.frontier.AlreadyFetchedMiddleware": 940,
    "scraper.middlewares.ImageRequestStatsMiddleware": 950,
}
EXTENSIONS = {
    "scraper.extensions.HarvestProgress": 500,
}
#: Seconds between progress lines (0 = none).
PROGRESS_INTERVAL = 30.0
#: Scrapy's own per-minute line is replaced by the progress line above.
LOGSTATS_INTERVAL = 0
#: A crawler opens no listening ports of its own.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
DEFAULT_DROPITEM_LOG_LEVEL = "INFO"
LOG_FORMATTER = "scraper.logformat.HarvestLogFormatter"
#: Photos can be large: allow up to 64 MiB, warn above 16 MiB.
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024
FEED_EXPORT_ENCODING = "utf-8"
