"""`EVENTS_URL`: which store holds the events, and clients for the ClickHouse one.

- unset or empty: the Django database (SQLite or PostgreSQL);
- `clickhouse://user:password@host:8123/database` (or `clickhouses://` for TLS): a ClickHouse server over HTTP;
- `chdb:///absolute/path?database=flexmeter` or `chdb://:memory:`: the same engine in-process (one process may
  open a data directory at a time).

`EVENTS_CLICKHOUSE_CLUSTER` names the cluster for `ON CLUSTER` DDL (empty: a single server or chdb).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

DJANGO, CLICKHOUSE, CHDB = "django", "clickhouse", "chdb"
DEFAULT_DATABASE = "flexmeter"


@dataclass(frozen=True)
class EventsBackend:
    kind: str
    url: str = ""
    database: str = DEFAULT_DATABASE
    cluster: str = ""

    @property
    def is_clickhouse(self) -> bool:
        return self.kind in (CLICKHOUSE, CHDB)


def parse_events_url(url: str, *, cluster: str = "") -> EventsBackend:
    """The backend an `EVENTS_URL` names; an unknown scheme or a malformed URL is a configuration error."""
    url = (url or "").strip()
    if not url:
        return EventsBackend(kind=DJANGO)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    database = parse_qs(parts.query).get("database", [""])[0]
    if scheme in ("clickhouse", "clickhouses"):
        if not parts.hostname:
            raise ImproperlyConfigured(f"EVENTS_URL {url!r}: a ClickHouse URL needs a host")
        database = database or unquote(parts.path.strip("/")) or DEFAULT_DATABASE
        return EventsBackend(kind=CLICKHOUSE, url=url, database=_identifier(database, url), cluster=cluster)
    if scheme == CHDB:
        if not (parts.path or parts.netloc):
            raise ImproperlyConfigured(f"EVENTS_URL {url!r}: chdb needs a data directory (chdb:///path) or :memory:")
        return EventsBackend(kind=CHDB, url=url, database=_identifier(database or DEFAULT_DATABASE, url), cluster="")
    raise ImproperlyConfigured(
        f"EVENTS_URL {url!r}: unknown scheme {scheme!r}; use clickhouse://, chdb:// or leave it unset"
    )


def _identifier(name: str, url: str) -> str:
    if not name.replace("_", "").isalnum() or name[0].isdigit():
        raise ImproperlyConfigured(f"EVENTS_URL {url!r}: database {name!r} must be letters, digits and _")
    return name


@functools.lru_cache(maxsize=8)
def _parsed(url: str, cluster: str) -> EventsBackend:
    return parse_events_url(url, cluster=cluster)


def events_backend() -> EventsBackend:
    """The events backend the settings select (read on every call, so tests may switch it)."""
    from django.conf import settings

    return _parsed(settings.EVENTS_URL, settings.EVENTS_CLICKHOUSE_CLUSTER)


# Parameters are bound into a statement's text, so many customers' windows, or an environment's active customer ids,
# make a long statement: ClickHouse refuses any longer than 256 KiB unless told otherwise (every client's setting).
QUERY_BYTES = 64 * 1024 * 1024
_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def clickhouse_client(backend: EventsBackend):
    """A clickhouse-connect client for `backend` (one per URL and process; chdb allows one data directory)."""
    if not backend.is_clickhouse:
        raise ValueError("the Django database is not a ClickHouse backend")
    try:
        import clickhouse_connect
    except ImportError as error:  # pragma: no cover - the extra is part of the test install
        raise ImproperlyConfigured(
            'EVENTS_URL names ClickHouse, which needs the optional extra: pip install "flexmeter[clickhouse]"'
        ) from error
    with _clients_lock:
        client = _clients.get(backend.url)
        if client is None:
            dsn = backend.url.split("?", 1)[0]
            # no session id: a session runs one query at a time, and the API serves requests in threads
            client = clickhouse_connect.get_client(
                dsn=dsn, autogenerate_session_id=False, settings={"max_query_size": QUERY_BYTES}
            )
            _clients[backend.url] = client
        return client
