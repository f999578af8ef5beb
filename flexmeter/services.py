"""Writes for environments and API keys."""

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from flexmeter.db import server_bound_cursor
from flexmeter.models import API_KEY_VISIBLE_CHARS, ApiKey, Environment, generate_raw_api_key, hash_api_key


def environment_get_or_create(*, slug: str, name: str | None = None) -> Environment:
    slug = slugify(slug) or "production"
    environment, _ = Environment.objects.get_or_create(
        slug=slug, defaults={"name": name or slug.replace("-", " ").title()}
    )
    return environment


@transaction.atomic
def api_key_create(*, environment: Environment, name: str) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never retrievable again."""
    raw_key = generate_raw_api_key()
    api_key = ApiKey.objects.create(
        environment=environment,
        name=name.strip() or "API key",
        prefix=raw_key[:API_KEY_VISIBLE_CHARS],
        key_hash=hash_api_key(raw_key),
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """Return the active key matching `raw_key` (with its environment), or None.

    This runs on every API request, so it is one hand-written indexed query: building the equivalent ORM query
    cost more than the rest of a single-event ingest. Last use is recorded at most once a minute.
    """
    if not raw_key:
        return None
    now = timezone.now()
    # server-bound: prepared after a few requests, so PostgreSQL stops planning it for every API call
    with server_bound_cursor() as cursor:
        stale_before = connection.ops.adapt_datetimefield_value(now - LAST_USED_RESOLUTION)
        cursor.execute(_AUTHENTICATE_SQL, [stale_before, hash_api_key(raw_key)])
        row = cursor.fetchone()
    if row is None:
        return None
    key_id, key_name, key_prefix, stale, environment_id, public_id, environment_name, slug = row
    environment = Environment.from_db(connection.alias, ["id", "public_id", "name", "slug"], row[4:8])
    api_key = ApiKey.from_db(
        connection.alias, ["id", "environment_id", "name", "prefix"], (key_id, environment_id, key_name, key_prefix)
    )
    api_key.environment = environment
    if stale:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_ctes(raw_key: str) -> tuple[str, list]:
    """SQL common table expressions that authenticate `raw_key` inside another statement (PostgreSQL).

    `api_key(id, environment_id)` holds the active key matching `raw_key`, or no row; a second, data-modifying
    CTE records the key's use at most once a minute, as `api_key_authenticate` does. A hot endpoint can then
    authenticate and write in one statement: one round trip, one implicit transaction, and a revoked key is
    refused by the very statement that would have written. Returns the SQL (to follow `WITH`) and its
    positional parameters, which come first in the statement.
    """
    now = timezone.now()
    return _API_KEY_CTES, [hash_api_key(raw_key), now, now - LAST_USED_RESOLUTION]


LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
_AUTHENTICATE_SQL = f"""
    SELECT k.id, k.name, k.prefix, (k.last_used_at IS NULL OR k.last_used_at < %s),
           e.id, e.public_id, e.name, e.slug
    FROM {ApiKey._meta.db_table} k JOIN {Environment._meta.db_table} e ON e.id = k.environment_id
    WHERE k.key_hash = %s AND k.revoked_at IS NULL
"""
# The UPDATE re-checks staleness on the row it locks, so concurrent requests of the same minute skip it instead
# of each writing the same timestamp.
_API_KEY_CTES = f"""
    api_key AS (SELECT id, environment_id FROM {ApiKey._meta.db_table} WHERE key_hash = %s AND revoked_at IS NULL),
    api_key_use AS (
        UPDATE {ApiKey._meta.db_table} SET last_used_at = %s
        WHERE id = (SELECT id FROM api_key) AND (last_used_at IS NULL OR last_used_at < %s)
    )
"""
