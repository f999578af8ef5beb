"""Factories shared by every app's tests: environments, API keys, users."""

import functools

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from flexmeter.models import ApiKey, Environment, generate_raw_api_key, hash_api_key


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Environment {n}")
    slug = factory.Sequence(lambda n: f"env-{n}")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Use `ApiKeyFactory(raw_key=...)` to know the secret; `.raw_key` is set on the returned object."""

    class Meta:
        model = ApiKey

    environment = factory.SubFactory(EnvironmentFactory)
    name = "test key"
    raw_key = factory.LazyFunction(generate_raw_api_key)
    prefix = factory.LazyAttribute(lambda o: o.raw_key[:12])
    key_hash = factory.LazyAttribute(lambda o: hash_api_key(o.raw_key))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw_key = kwargs.pop("raw_key", None)
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw_key = raw_key
        return obj


def password_hash(raw: str | None) -> str:
    """`make_password(raw)`, hashed once per password and hasher setting: the default hasher (PBKDF2, about 0.5 s
    a hash on a busy CI machine) made most of the setup time of every test with a user. The hash is a real one for
    the hashers in force, so signing in with the password still checks it; users share its salt."""
    if raw is None:
        return make_password(raw)
    return _password_hash(raw, tuple(settings.PASSWORD_HASHERS))


@functools.cache
def _password_hash(raw: str, hashers: tuple[str, ...]) -> str:
    return make_password(raw)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = True
    is_superuser = True
    password = factory.django.Password("correct horse battery staple", transform=password_hash)
