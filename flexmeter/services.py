"""Writes for environments and API keys."""

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

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
    """Return the active key matching `raw_key`, recording its use at most once a minute to keep hot paths cheap."""
    if not raw_key:
        return None
    api_key = ApiKey.objects.select_related("environment").active().filter(key_hash=hash_api_key(raw_key)).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
