from django.core.management.base import CommandError

from flexmeter.errors import ValidationFailed
from metering.exporting import usage_export, usage_rows
from metering.management.csv_export import CsvExportCommand


class Command(CsvExportCommand):
    help = (
        "Export usage per feature and customer as CSV (feature, meter, customer, period, usage, unit), computed by "
        "the usage engine. With --start and --end: every published metered feature over that window (meters that "
        "never reset cover everything before --end), one row per customer with matching events. Without them: "
        "each active customer's current billing period, one row per feature. Filters: --feature (id or lookup "
        "key, repeatable) and --customer (external id). Writes to stdout unless --output is given (.gz compresses)."
    )

    noun = "usage rows"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--feature", action="append", default=[], help="feature id or lookup key (repeatable)")

    def handle(self, *args, **options):
        environment = self.environment(options)
        start, end = self.window(options)
        try:
            rows = usage_rows(
                environment=environment,
                features=options["feature"],
                external_customer_id=options["customer"],
                start=start,
                end=end,
            )
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from exc
        self.write(options, lambda out: usage_export(rows=rows, out=out))
