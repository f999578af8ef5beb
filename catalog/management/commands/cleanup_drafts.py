import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from catalog.services import drafts_cleanup


class Command(BaseCommand):
    help = (
        "Delete Add Feature wizard drafts (and their draft meters) that nobody touched for --older-than hours. "
        "Published and archived features are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=72, help="age in hours (default 72)")
        parser.add_argument("--batch-size", type=int, default=500, help="drafts deleted per transaction")
        parser.add_argument("--dry-run", action="store_true", help="only report how many drafts would go")

    def handle(self, *args, **options):
        if options["older_than"] < 0:
            raise CommandError("--older-than must be zero or more hours")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        count = drafts_cleanup(
            older_than=dt.timedelta(hours=options["older_than"]),
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
        )
        if options["verbosity"] >= 1:
            verb = "would delete" if options["dry_run"] else "deleted"
            noun = "draft" if count == 1 else "drafts"
            self.stdout.write(f"{verb} {count} {noun} older than {options['older_than']:g} hours")
