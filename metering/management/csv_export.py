"""What `export_events` and `export_usage` share: the environment, customer and window options, the output file,
a reader that closes the pipe early, and the closing summary."""

import datetime as dt
from collections.abc import Callable
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError

from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.exporting import moment_parse, output_open, stdout_release


class CsvExportCommand(BaseCommand):
    noun = "rows"

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="production", help="environment slug (default: production)")
        parser.add_argument("--customer", help="only this external customer id")
        parser.add_argument("--start", help="from this time, inclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--end", help="until this time, exclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--output", "-o", help="file to write (default: stdout; a .gz name compresses)")

    def environment(self, options) -> Environment:
        environment = Environment.objects.filter(slug=options["environment"]).first()
        if environment is None:
            raise CommandError(f"unknown environment {options['environment']!r}")
        return environment

    def window(self, options) -> tuple[dt.datetime | None, dt.datetime | None]:
        try:
            return tuple(moment_parse(options[name], name=name) if options[name] else None for name in ("start", "end"))
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc

    def write(self, options, export: Callable[[TextIO], int]) -> None:
        """Open the output, run `export(out) -> count`, close it, and report the count."""
        try:
            out = output_open(options["output"], stdout=self.stdout)
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc
        try:
            count = export(out)
        except BrokenPipeError:
            stdout_release()
            return
        finally:
            if out is not self.stdout:
                out.close()
        if options["verbosity"] > 0:
            to_file = out is not self.stdout
            summary = f"Exported {count:,} {self.noun}" + (f" to {options['output']}." if to_file else ".")
            (self.stdout if to_file else self.stderr).write(summary)
