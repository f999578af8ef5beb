"""flexmeter settings. Everything configurable comes from environment variables.

Development defaults are safe to run locally (SQLite file in ./var, DEBUG on). With DEBUG off the
process refuses to start without SECRET_KEY.
"""

import importlib.util
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative.")
    return number


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_filters",
    "ninja",
    "flexmeter",
    "catalog",
    "metering",
    "entitlements",
    "django_tasks_db",
    "worker",
    "webhooks",
    "alerts",
]
# The bench_* commands are development tools in the top-level `benchmarks` package, which is not installed with
# the product: they join only when asked for and when run from a checkout, so `manage.py help` never lists them.
if env_bool("FLEXMETER_BENCHMARKS", False) and importlib.util.find_spec("benchmarks") is not None:
    INSTALLED_APPS.append("benchmarks")

# Sessions, CSRF, the logged-in user and messages serve the dashboard only: their Dashboard* versions skip /v1.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "flexmeter.middleware.HeadAsGetMiddleware",
    "flexmeter.middleware.ApiErrorMiddleware",
    "flexmeter.middleware.UnstorableTextMiddleware",
    "flexmeter.middleware.DashboardSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "flexmeter.middleware.DashboardCsrfViewMiddleware",
    "flexmeter.middleware.DashboardAuthenticationMiddleware",
    "flexmeter.middleware.DashboardMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "flexmeter.middleware.CurrentEnvironmentMiddleware",
    "flexmeter.middleware.DashboardErrorMiddleware",
]

ROOT_URLCONF = "flexmeter.urls"
WSGI_APPLICATION = "flexmeter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "flexmeter.context_processors.environments",
            ],
        },
    },
]

DEFAULT_SQLITE_PATH = BASE_DIR / "var" / "flexmeter.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}",
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DEFAULT_SQLITE_PATH.parent.mkdir(exist_ok=True)
    # WAL lets the dashboard read while an import writes; IMMEDIATE avoids lock-upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_SIZE", "10")),
        # How long a request waits for a pooled connection before it is answered 503 (psycopg's default is 30 s).
        "timeout": env_number("DATABASE_POOL_TIMEOUT", 10),
    }
    # Django turns psycopg's prepared statements off (for transaction-mode poolers in front of PostgreSQL). Only
    # `flexmeter.db.server_bound_cursor` statements can be prepared (Django's own cursors bind on the client), and
    # they are the hot ones — usage, access checks, single-event ingest — whose planning would otherwise cost more
    # than running them. 0 turns it off again (a pooler that cannot hold prepared statements).
    _prepare_after = int(env_number("DATABASE_PREPARE_THRESHOLD", 5))
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = _prepare_after or None
    # PostgreSQL compiles a statement estimated above jit_above_cost to machine code first: the dashboard's usage
    # statements (thousands of raw events plus rollup rows) crossed it and spent 15-95 ms compiling to run 10-130 ms.
    # DATABASE_JIT=on gives the server's own setting back.
    if os.environ.get("DATABASE_JIT", "off").lower() != "on":
        DATABASES["default"]["OPTIONS"]["options"] = "-c jit=off"

# Usage reads for many customers at once (an alert pass, a large batch of access checks) hash every (customer,
# value) pair they count; with PostgreSQL's default work_mem (4 MB) COUNT_UNIQUE over 10,000 customers spilled
# to disk and took 1.7-1.9 s instead of 1.2 s. Such reads get this much (MB) for their own transaction; 0 leaves
# the server's setting.
USAGE_BULK_WORK_MEM_MB = int(env_number("USAGE_BULK_WORK_MEM_MB", 32))

# The day in progress is rolled up from midnight to two hours ago (metering/usage/rollups/refresh.py), and rolled up
# again once that moment has moved this many seconds (or a late event changed it): reads then scan raw events of the
# last two to three hours instead of the whole day. 0 stops rolling it up (rows already made serve until it is sealed).
ROLLUPS_DAY_IN_PROGRESS_EVERY = env_number("ROLLUPS_DAY_IN_PROGRESS_EVERY", 1800)

# A request that fails because the database cannot be reached is answered 503 with this Retry-After (seconds).
DATABASE_UNAVAILABLE_RETRY_AFTER = 5

# Where events live (SPEC §12): unset = the database above; clickhouse://… or chdb://… see metering/clickhouse.
EVENTS_URL = os.environ.get("EVENTS_URL", "")
EVENTS_CLICKHOUSE_CLUSTER = os.environ.get("EVENTS_CLICKHOUSE_CLUSTER", "")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves /static/ in every mode straight from the app and project static directories (the finders),
# so there is no collectstatic step to forget before starting the server. Names are not hashed, so browsers
# revalidate after WhiteNoise's short max-age. STATIC_ROOT is only for `collectstatic`, for a proxy that serves the
# files itself.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = Path(os.environ["STATIC_ROOT"]) if os.environ.get("STATIC_ROOT") else None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "flexmeter:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "flexmeter:login"

# A bulk request may carry 1,000 events of up to 32 KiB each (SPEC §6.2).
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

# A /v1 request body of N bytes must arrive within min(REQUEST_BODY_TIMEOUT, REQUEST_BODY_GRACE + N / MIN_RATE)
# seconds, or the request is answered 408 (checked after every 64 KiB piece, see flexmeter/body.py).
REQUEST_BODY_TIMEOUT = env_number("REQUEST_BODY_TIMEOUT", 60)
REQUEST_BODY_GRACE = env_number("REQUEST_BODY_GRACE", 5)
REQUEST_BODY_MIN_RATE = env_number("REQUEST_BODY_MIN_RATE", 10_000)

NINJA_PAGINATION_MAX_LIMIT = 100

# Everything the dashboard and /v1/docs load comes from our own origin (no CDN); htmx and Swagger UI set inline
# styles, and the favicon and Swagger UI's icons are data: URIs. No inline script is allowed.
DEFAULT_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}


def csp_from_env(value: str | None, *, default: dict) -> dict:
    """`CSP` unset: `default`; `off`: no policy; anything else: a policy written as in the header."""
    if value is None or not value.strip():
        return default
    if value.strip().lower() in {"off", "none", "false", "0"}:
        return {}
    policy = {}
    for directive in value.split(";"):
        if directive.strip():
            name, *sources = directive.split()
            policy[name.lower()] = sources
    return policy


# Without a full policy (DEBUG), the dashboard still may never be framed.
_csp = csp_from_env(os.environ.get("CSP"), default={"frame-ancestors": [CSP.NONE]} if DEBUG else DEFAULT_CSP)
if env_bool("CSP_REPORT_ONLY", False):
    SECURE_CSP_REPORT_ONLY = _csp
else:
    SECURE_CSP = _csp

# Customer portal (GET /v1/customers/portal/{external_id}): how long a link opens the page, and which origins may
# embed the page in a frame (its policy is the one above with these as frame-ancestors). The dashboard itself
# may never be framed.
PORTAL_SESSION_SECONDS = int(os.environ.get("PORTAL_SESSION_SECONDS", "3600"))
PORTAL_FRAME_ANCESTORS = env_list("PORTAL_FRAME_ANCESTORS", "")
X_FRAME_OPTIONS = "DENY"

# Background jobs go through Django's Tasks framework into a database queue that `manage.py run_worker` runs.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
DATABASE_ROUTERS = ["worker.routers.QueueOnDefaultDatabase"]


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}.") from None
    if not 0 < value < float("inf"):
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, got {raw!r}.")
    return value


WORKER_ROLLUPS_EVERY = env_seconds("WORKER_ROLLUPS_EVERY", 300)
# A running job whose worker has not been seen for this long is put back on the queue (the worker was killed).
WORKER_ABANDONED_AFTER = env_seconds("WORKER_ABANDONED_AFTER", 60)
# Seconds between alert evaluations of the pairs ingest marked (SPEC §11: at least every 60 s).
WORKER_ALERTS_EVERY = env_seconds("WORKER_ALERTS_EVERY", 30)
# How long finished job rows stay in the queue table to be read (admin, *Database tasks*); the worker prunes older
# ones every WORKER_PRUNE_EVERY seconds.
WORKER_KEEP_RESULTS = env_seconds("WORKER_KEEP_RESULTS", 7 * 86400)
WORKER_PRUNE_EVERY = env_seconds("WORKER_PRUNE_EVERY", 3600)

# Webhook delivery (SPEC §11): how often the worker looks for due messages, how long one POST may take, how many run
# at once, how long a claim holds a message before another run may take it (a killed worker's messages are retried
# after it), the delay before each attempt (comma-separated seconds) and after how long of unbroken failures an
# endpoint is disabled.
WEBHOOKS_DELIVER_EVERY = env_seconds("WEBHOOKS_DELIVER_EVERY", 2)
WEBHOOKS_TIMEOUT = env_seconds("WEBHOOKS_TIMEOUT", 15)
WEBHOOKS_CONCURRENCY = max(1, int(env_seconds("WEBHOOKS_CONCURRENCY", 8)))
WEBHOOKS_CLAIM_LEASE = env_seconds("WEBHOOKS_CLAIM_LEASE", 2 * WEBHOOKS_TIMEOUT + 30)
if WEBHOOKS_CLAIM_LEASE <= WEBHOOKS_TIMEOUT:
    raise ImproperlyConfigured("WEBHOOKS_CLAIM_LEASE must be longer than WEBHOOKS_TIMEOUT.")
try:
    WEBHOOKS_RETRY_SCHEDULE = tuple(
        float(part)
        for part in os.environ.get("WEBHOOKS_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000").split(",")
    )
except ValueError:
    raise ImproperlyConfigured("WEBHOOKS_RETRY_SCHEDULE must be comma-separated numbers of seconds.") from None
WEBHOOKS_DISABLE_AFTER = env_seconds("WEBHOOKS_DISABLE_AFTER", 5 * 24 * 3600)
# The events.unmatched digest goes out at most once per this interval; its links point at FLEXMETER_BASE_URL.
WEBHOOKS_UNMATCHED_DIGEST_EVERY = env_seconds("WEBHOOKS_UNMATCHED_DIGEST_EVERY", 900)
# The digest reads the events written up to this long ago: a write is stamped (ingested_at, or the ClickHouse
# version) before it lands, so a shorter wait could pass over a slow transaction or insert (webhooks/digest.py).
WEBHOOKS_UNMATCHED_DIGEST_LAG = env_seconds("WEBHOOKS_UNMATCHED_DIGEST_LAG", 300)
FLEXMETER_BASE_URL = os.environ.get("FLEXMETER_BASE_URL", "http://127.0.0.1:8000")

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    # Browsers honour HSTS only on HTTPS answers, so this is harmless on plain HTTP and protects once TLS is on.
    SECURE_HSTS_SECONDS = int(env_number("SECURE_HSTS_SECONDS", 31_536_000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    # Django's Tasks framework logs every start and finish at INFO: with webhook delivery every 2 s that floods the
    # demo's terminal. Failures are logged at ERROR and still show.
    "loggers": {"django.tasks": {"level": os.environ.get("LOG_LEVEL", "WARNING")}},
}
