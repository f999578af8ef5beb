from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.shortcuts import resolve_url

from flexmeter.demo import demo_prepare
from flexmeter.errors import FlexmeterError
from metering.clickhouse.config import events_backend
from metering.demo_data import DEMO_EVENTS
from metering.progress import ProgressBar
from metering.usage.rollups.refresh import rollups_refresh
from worker.process import worker_child


class Command(BaseCommand):
    help = (
        "Run the demo: migrate, seed demo data if the database is empty (catalog, customers, ~100,000 events), "
        "reset the 'admin' user's password to a new random one, issue a new demo API key (revoking the previous "
        "one), print them with the URL, and serve the dashboard at http://127.0.0.1:8000 (static files included) with "
        "the background worker (run_worker) in a child process stopped with the server. "
        "Safe to run again: a non-empty database is never reseeded."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="where to serve (default 127.0.0.1:8000)")
        parser.add_argument("--no-serve", action="store_true", help="prepare the demo but do not start the server")
        parser.add_argument(
            "--no-worker", action="store_true", help="serve without the background worker (periodic jobs stop)"
        )
        parser.add_argument(
            "--events", type=int, default=DEMO_EVENTS, help=f"events to seed into an empty database ({DEMO_EVENTS:,})"
        )

    def handle(self, *args, **options):
        if options["events"] < 0:
            raise CommandError("--events must not be negative")
        verbose = options["verbosity"] > 0
        if verbose:
            self.stdout.write("Migrating the database…")
        call_command("migrate", verbosity=0, interactive=False)
        if events_backend().is_clickhouse:  # events in ClickHouse (docs/clickhouse.md): its tables too
            call_command("migrate_events", verbosity=0)
        try:
            setup = demo_prepare(events=options["events"], progress=ProgressBar(self.stderr, enabled=verbose))
        except FlexmeterError as exc:
            raise CommandError(f"preparing the demo failed: {exc}") from exc
        rollups_refresh()  # PostgreSQL only: month-long usage pages read daily rollups (a no-op on SQLite)
        base_url = f"http://{options['addrport']}"
        if setup.seed is not None and verbose:
            for line in setup.seed.lines():
                self.stdout.write(line)
        elif verbose:
            self.stdout.write("The database already holds data: not reseeding it.")
        revoked = " (the previous demo key was revoked)" if setup.revoked_keys else ""
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"flexmeter demo ready: {base_url}/"))
        self.stdout.write(f"  log in at  {base_url}{resolve_url(settings.LOGIN_URL)}")
        self.stdout.write(f"  username   {setup.username}")
        self.stdout.write(f"  password   {setup.password}")
        self.stdout.write(f"  API key    {setup.api_key}  (environment {setup.environment.slug}){revoked}")
        self.stdout.write(f"  try it     curl -s {base_url}/v1/features -H 'x-api-key: {setup.api_key}'")
        if not options["no_serve"]:
            self.stdout.write("Serving the dashboard; press Ctrl-C to stop.")
            if options["no_worker"]:
                self.stdout.flush()
                call_command("runserver", options["addrport"], use_reloader=False, insecure_serving=True)
                return
            self.stdout.write("The background worker runs alongside (rollup refresh and other periodic jobs).")
            self.stdout.flush()
            with worker_child():
                call_command("runserver", options["addrport"], use_reloader=False, insecure_serving=True)
