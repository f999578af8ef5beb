import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from flexmeter.services import api_key_create, environment_get_or_create


class Command(BaseCommand):
    help = "Run the demo: migrate, create an admin user and an API key, and serve the dashboard on 127.0.0.1:8000."

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="prepare the demo but do not start the server")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0, interactive=False)
        environment = environment_get_or_create(slug="production", name="Production")
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        user.set_password(password)
        user.save()
        _, raw_key = api_key_create(environment=environment, name="demo")
        self.stdout.write(f"Dashboard: http://{options['addrport']}/   user: admin   password: {password}")
        self.stdout.write(f"API key ({environment.slug}): {raw_key}")
        if not options["no_serve"]:
            call_command("runserver", options["addrport"], use_reloader=False)
