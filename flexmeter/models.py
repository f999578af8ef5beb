"""What every app shares: environments (isolation boundary) and the API keys that open them."""

import hashlib
import secrets

from django.db import models
from django.utils import timezone

from flexmeter.ids import new_public_id

API_KEY_PREFIX = "fm_"
API_KEY_VISIBLE_CHARS = 12


def hash_api_key(raw_key: str) -> str:
    """Keys are high-entropy random strings, so a fast unsalted SHA-256 is enough to protect them at rest."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_raw_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class EnvironmentQuerySet(models.QuerySet):
    def by_slug(self, slug: str) -> "Environment":
        return self.get(slug=slug)


class Environment(models.Model):
    """An isolated space (production, sandbox…). Every catalog and metering row belongs to exactly one."""

    public_id = models.CharField(max_length=40, unique=True, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id("env")
        super().save(*args, **kwargs)

    @property
    def is_production(self) -> bool:
        """Production is the environment whose slug says so (`production`, `prod-eu`); every other one (sandbox,
        staging, dev) is shown with a banner so test data is never mistaken for the real thing."""
        return "prod" in self.slug


class ApiKeyQuerySet(models.QuerySet):
    def for_environment(self, environment: Environment) -> "ApiKeyQuerySet":
        return self.filter(environment=environment)

    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A secret that authenticates API calls for one environment. Only its hash and a visible prefix are stored."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=API_KEY_VISIBLE_CHARS, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
