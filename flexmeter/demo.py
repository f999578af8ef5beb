"""Preparing the demo (`manage.py demo`): seed an empty database, an admin login and a fresh API key.

Safe to run again: a database that holds anything is never reseeded, the admin password is reset (it is only
ever printed, never stored in clear), and the previous demo API key is revoked when a new one is issued, so
exactly one demo key is live.
"""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.models import Feature, Meter
from flexmeter.models import ApiKey, Environment
from flexmeter.services import api_key_create, api_key_revoke, environment_get_or_create
from metering.demo_data import DEMO_EVENTS, DemoSeedReport, demo_seed
from metering.models import Customer, Event
from metering.progress import ProgressBar

DEMO_USERNAME = "admin"
DEMO_KEY_NAME = "Demo key (manage.py demo)"


@dataclass(frozen=True)
class DemoSetup:
    environment: Environment
    username: str
    password: str
    api_key: str
    revoked_keys: int
    seed: DemoSeedReport | None


def database_is_empty() -> bool:
    """No catalog, customers or events in any environment (environments and users alone do not count)."""
    return not (
        Event.objects.exists() or Meter.objects.exists() or Feature.objects.exists() or Customer.objects.exists()
    )


def demo_admin_reset(*, username: str = DEMO_USERNAME) -> str:
    """Create or update the superuser `username` with a new random password, which is returned."""
    password = secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return password


@transaction.atomic
def demo_api_key_rotate(*, environment: Environment) -> tuple[str, int]:
    """Revoke earlier demo keys of the environment and create a new one: `(raw_key, revoked_count)`."""
    earlier = list(ApiKey.objects.for_environment(environment).active().filter(name=DEMO_KEY_NAME))
    for api_key in earlier:
        api_key_revoke(api_key=api_key)
    _, raw_key = api_key_create(environment=environment, name=DEMO_KEY_NAME)
    return raw_key, len(earlier)


def demo_prepare(*, events: int = DEMO_EVENTS, progress: ProgressBar | None = None) -> DemoSetup:
    """Seed the production environment when the database is empty, then reset the admin login and the demo key."""
    environment = environment_get_or_create(slug="production", name="Production")
    seed = demo_seed(environment=environment, events=events, progress=progress) if database_is_empty() else None
    password = demo_admin_reset()
    raw_key, revoked = demo_api_key_rotate(environment=environment)
    return DemoSetup(
        environment=environment,
        username=DEMO_USERNAME,
        password=password,
        api_key=raw_key,
        revoked_keys=revoked,
        seed=seed,
    )
