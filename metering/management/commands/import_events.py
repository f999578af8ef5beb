import sys

from django.core.management.base import BaseCommand, CommandError

from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from flexmeter.services import environment_get_or_create
from metering.importing.batches import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from metering.importing.run import events_import
from metering.importing.sources import FORMATS, SourceError, source_open
from metering.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Import (backfill) events from a JSON Lines or CSV file, optionally gzip-compressed, or from stdin ('-'). "
        "Each record is validated exactly like POST /v1/events and stored in batches; a redelivered event_id "
        "replaces the stored event and counts as a duplicate, so re-running an import (also after an interruption: "
        "every batch is committed on its own) never double counts. Records without an event_id get a stable id "
        "derived from their content. "
        "JSON Lines: one event object per line. CSV: a header row with event_name and external_customer_id, "
        "optionally event_id, timestamp (RFC 3339) and source, and the properties either as one 'properties' "
        "column holding a JSON object or as 'properties.<key>' columns (string values; empty cells are omitted); "
        "other columns are ignored. Invalid records never stop the import: they are counted, listed with their line "
        "numbers and reasons, and written to --rejects; the command then exits with status 1. "
        "'No published meter' counts events whose event_name no published meter of the environment uses "
        "(event-name level: filters and fields are explained per event by the debugger). "
        "On PostgreSQL a second process reads and validates the file while this one writes "
        "(bench_import measures the rate); it stops with the command, also on Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="file to import (.jsonl, .ndjson, .json, .csv, optionally .gz) or - for stdin")
        parser.add_argument("--environment", default="production", help="environment slug (default: production)")
        parser.add_argument(
            "--create-environment", action="store_true", help="create the environment if it does not exist"
        )
        parser.add_argument("--format", choices=FORMATS, help="source format (default: from the file name or content)")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"events per transaction (default {DEFAULT_BATCH_SIZE:,}, at most {MAX_BATCH_SIZE:,})",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="validate everything and report what would be stored, invalid and unmetered, without writing",
        )
        parser.add_argument(
            "--rejects",
            metavar="PATH",
            help='write invalid records to PATH as JSON Lines: {"line", "errors", "event"} (or "text" when the '
            "line did not parse)",
        )

    def handle(self, *args, **options):
        environment = self._environment(options["environment"], create=options["create_environment"])
        if not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE:,}")
        try:
            source = source_open(options["path"], format=options["format"], stdin=sys.stdin.buffer)
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
        rejects = None
        try:
            if options["rejects"]:
                try:
                    rejects = open(options["rejects"], "w", encoding="utf-8")  # noqa: SIM115 - closed below
                except OSError as exc:
                    raise CommandError(f"cannot write {options['rejects']}: {exc.strerror or exc}") from None
            progress = ProgressBar(self.stderr, total=source.total_bytes, enabled=options["verbosity"] > 0)
            report = events_import(
                environment=environment,
                source=source,
                batch_size=options["batch_size"],
                dry_run=options["dry_run"],
                rejects=rejects,
                rejects_path=options["rejects"],
                progress=progress,
            )
        except (SourceError, ValidationFailed) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            source.close()
            if rejects is not None:
                rejects.close()
        if options["verbosity"] > 0:
            for line in report.lines():
                self.stdout.write(line)
        if report.invalid:
            raise CommandError(f"{report.invalid:,} of {report.records:,} records were invalid and not imported")

    def _environment(self, slug: str, *, create: bool) -> Environment:
        if create:
            return environment_get_or_create(slug=slug)
        environment = Environment.objects.filter(slug=slug).first()
        if environment is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"unknown environment {slug!r} (known: {known}); pass --create-environment to create it")
        return environment
