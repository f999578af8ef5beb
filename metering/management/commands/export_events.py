from django.core.management.base import BaseCommand, CommandError

from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.exporting import events_export, events_export_queryset, moment_parse, output_open, stdout_release
from metering.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Export events as CSV in the import format (event_id, event_name, external_customer_id, timestamp, source, "
        "properties as exact JSON, ingested_at), oldest first, so `import_events` reads the file back unchanged. "
        "Filters: --event-name (repeatable), --customer, and the half-open window --start <= timestamp < --end "
        "(RFC 3339, or a date meaning midnight UTC). Writes to stdout unless --output is given (.gz compresses)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="production", help="environment slug (default: production)")
        parser.add_argument("--event-name", action="append", default=[], help="only this event name (repeatable)")
        parser.add_argument("--customer", help="only this external_customer_id")
        parser.add_argument("--start", help="from this time, inclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--end", help="until this time, exclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--output", "-o", help="file to write (default: stdout; a .gz name compresses)")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(slug=options["environment"]).first()
        if environment is None:
            raise CommandError(f"unknown environment {options['environment']!r}")
        try:
            events = events_export_queryset(
                environment=environment,
                event_names=options["event_name"],
                external_customer_id=options["customer"],
                start=moment_parse(options["start"], name="start") if options["start"] else None,
                end=moment_parse(options["end"], name="end") if options["end"] else None,
            )
            out = output_open(options["output"], stdout=self.stdout)
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc
        verbose = options["verbosity"] > 0
        progress = ProgressBar(self.stderr, total=events.count() if verbose else None, enabled=verbose)
        try:
            count = events_export(events=events, out=out, progress=progress)
        except BrokenPipeError:
            stdout_release()
            return
        finally:
            if out is not self.stdout:
                out.close()
        if verbose:
            to_file = out is not self.stdout
            summary = f"Exported {count:,} events" + (f" to {options['output']}." if to_file else ".")
            (self.stdout if to_file else self.stderr).write(summary)
