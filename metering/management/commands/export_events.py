from django.core.management.base import CommandError

from flexmeter.errors import ValidationFailed
from metering.exporting import events_export, events_export_queryset
from metering.management.csv_export import CsvExportCommand
from metering.progress import ProgressBar


class Command(CsvExportCommand):
    help = (
        "Export events as CSV in the import format (event_id, event_name, external_customer_id, timestamp, source, "
        "properties as exact JSON, ingested_at), oldest first, so `import_events` reads the file back unchanged. "
        "Filters: --event-name (repeatable), --customer, and the half-open window --start <= timestamp < --end "
        "(RFC 3339, or a date meaning midnight UTC). Writes to stdout unless --output is given (.gz compresses)."
    )

    noun = "events"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--event-name", action="append", default=[], help="only this event name (repeatable)")

    def handle(self, *args, **options):
        environment = self.environment(options)
        start, end = self.window(options)
        try:
            events = events_export_queryset(
                environment=environment,
                event_names=options["event_name"],
                external_customer_id=options["customer"],
                start=start,
                end=end,
            )
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc
        verbose = options["verbosity"] > 0
        progress = ProgressBar(self.stderr, total=events.count() if verbose else None, enabled=verbose)
        self.write(options, lambda out: events_export(events=events, out=out, progress=progress))
