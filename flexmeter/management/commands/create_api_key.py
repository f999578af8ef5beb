from django.core.management.base import BaseCommand

from flexmeter.services import api_key_create, environment_get_or_create


class Command(BaseCommand):
    help = "Create an API key for an environment (created if missing). The raw key is the last line of output."

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="production", help="environment slug (default: production)")
        parser.add_argument("--name", default="CLI key", help="a name to recognise the key by")

    def handle(self, *args, **options):
        environment = environment_get_or_create(slug=options["environment"])
        api_key, raw_key = api_key_create(environment=environment, name=options["name"])
        if options["verbosity"] > 0:
            self.stdout.write(
                f"Created API key '{api_key.name}' ({api_key.prefix}…) for environment {environment.slug}."
            )
            self.stdout.write("Store it now: it cannot be shown again.")
        self.stdout.write(raw_key)
