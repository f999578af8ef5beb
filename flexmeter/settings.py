"""flexmeter settings. Everything configurable comes from environment variables.

Development defaults are safe to run locally (SQLite file in ./var, DEBUG on). With DEBUG off the
process refuses to start without SECRET_KEY.
"""

import importlib.util
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


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
]
# The bench_* commands are development tools in the top-level `benchmarks` package, which is not installed with
# the product: they join only when asked for and when run from a checkout, so `manage.py help` never lists them.
if env_bool("FLEXMETER_BENCHMARKS", False) and importlib.util.find_spec("benchmarks") is not None:
    INSTALLED_APPS.append("benchmarks")

# Sessions, CSRF, the logged-in user and messages serve the dashboard only: their Dashboard* versions skip /v1.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "flexmeter.middleware.ApiErrorMiddleware",
    "flexmeter.middleware.DashboardSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "flexmeter.middleware.DashboardCsrfViewMiddleware",
    "flexmeter.middleware.DashboardAuthenticationMiddleware",
    "flexmeter.middleware.DashboardMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "flexmeter.middleware.CurrentEnvironmentMiddleware",
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
    }

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
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "var" / "staticfiles"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "flexmeter:login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "flexmeter:login"

# A bulk request may carry 1,000 events of up to 32 KiB each (SPEC §6.2).
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

NINJA_PAGINATION_MAX_LIMIT = 100

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
