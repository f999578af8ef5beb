from django.core.management.base import BaseCommand, CommandError

from flexmeter.errors import ValidationFailed
from flexmeter.models import Environment
from metering.exporting import moment_parse, output_open, stdout_release, usage_export, usage_rows


class Command(BaseCommand):
    help = (
        "Export usage per feature and customer as CSV (feature, meter, customer, period, usage, unit), computed by "
        "the usage engine. With --start and --end: every published metered feature over that window (meters that "
        "never reset cover everything before --end), one row per customer with matching events. Without them: "
        "each active customer's current billing period, one row per feature. Filters: --feature (id or lookup "
        "key, repeatable) and --customer (external id). Writes to stdout unless --output is given (.gz compresses)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", default="production", help="environment slug (default: production)")
        parser.add_argument("--feature", action="append", default=[], help="feature id or lookup key (repeatable)")
        parser.add_argument("--customer", help="only this external customer id")
        parser.add_argument("--start", help="window start, inclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--end", help="window end, exclusive (RFC 3339 or YYYY-MM-DD)")
        parser.add_argument("--output", "-o", help="file to write (default: stdout; a .gz name compresses)")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(slug=options["environment"]).first()
        if environment is None:
            raise CommandError(f"unknown environment {options['environment']!r}")
        try:
            rows = usage_rows(
                environment=environment,
                features=options["feature"],
                external_customer_id=options["customer"],
                start=moment_parse(options["start"], name="start") if options["start"] else None,
                end=moment_parse(options["end"], name="end") if options["end"] else None,
            )
            out = output_open(options["output"], stdout=self.stdout)
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc
        try:
            count = usage_export(rows=rows, out=out)
        except BrokenPipeError:
            stdout_release()
            return
        finally:
            if out is not self.stdout:
                out.close()
        if options["verbosity"] > 0:
            to_file = out is not self.stdout
            summary = f"Exported {count:,} usage rows" + (f" to {options['output']}." if to_file else ".")
            (self.stdout if to_file else self.stderr).write(summary)
