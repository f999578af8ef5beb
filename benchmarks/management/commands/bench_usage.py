import os

from django.core.management.base import BaseCommand, CommandError

from benchmarks.runner import BenchmarkError
from benchmarks.usage import METERS, WINDOW_SIZES, ZONES, usage_benchmark_run

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flexmeter_usage_bench"
TARGETS_MS = {"typical customer": ("p50", 5.0), "heavy customer": ("p95", 15.0), "all customers": ("p50", 100.0)}


class Command(BaseCommand):
    help = (
        "Benchmark the usage engine: load N synthetic events (700 typical customers with ~1,000 events a month, "
        "3 heavy ones with ~100,000) into a throw-away PostgreSQL database, then time every aggregation type for "
        "one typical customer, one heavy customer and all customers (GROUP BY) over one month, printing p50/p95. "
        "The database is created and dropped by the command (its name must contain 'bench')."
    )
    requires_system_checks = []  # a measurement tool: it touches no URL, form or admin

    def add_arguments(self, parser):
        parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}")
        parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events to load (default 1M)")
        parser.add_argument("--batch-size", type=int, default=1_000_000, help="events per INSERT statement")
        parser.add_argument("--repeat", type=int, default=20, help="timed runs per heavy-customer query")
        parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for --reuse)")
        parser.add_argument("--reuse", action="store_true", help="time a kept database again without reloading")
        parser.add_argument(
            "--no-rollups", action="store_true", help="time raw-event scans only (no rollups are built or read)"
        )
        parser.add_argument(
            "--http",
            action="store_true",
            help="ask for usage over HTTP (a granian server on 127.0.0.1) where rollups are read",
        )
        parser.add_argument(
            "--clickhouse",
            metavar="PATH",
            help="also load the same events into ClickHouse (a fresh chdb data directory at PATH, replaced) and "
            "print PostgreSQL raw, PostgreSQL with rollups and ClickHouse side by side, with load times and sizes",
        )
        parser.add_argument(
            "--load-only",
            action="store_true",
            help="load the events and keep the database, nothing else (time it later with --reuse)",
        )
        parser.add_argument(
            "--meters",
            default=",".join(METERS),
            help="comma-separated meters to build and time (default: all); on a kept database the others become "
            "drafts, whose rollups the run's refresh drops (a later run of all meters builds them again)",
        )
        parser.add_argument("--zones", default=",".join(ZONES), help="comma-separated IANA time zones of the months")
        parser.add_argument(
            "--window-sizes", default=",".join(WINDOW_SIZES), help="comma-separated window sizes ('' = no windows)"
        )

    def handle(self, *args, **options):
        if options["events"] < 1 or options["batch_size"] < 1 or options["repeat"] < 1:
            raise CommandError("--events, --batch-size and --repeat must be positive")
        verbose = options["verbosity"] > 1

        def log(message: str) -> None:
            if verbose:
                self.stdout.write(f"  … {message}")

        def progress(done: int) -> None:
            if options["verbosity"] > 0:
                self.stdout.write(f"\r  loaded {done:>12,} / {options['events']:,}", ending="")
                self.stdout.flush()

        try:
            run = usage_benchmark_run(
                database_url=options["database_url"],
                events=options["events"],
                batch_size=options["batch_size"],
                repeat=options["repeat"],
                keep=options["keep"],
                reuse=options["reuse"],
                rollups=not options["no_rollups"],
                log=log,
                progress=progress,
                over_http=options["http"],
                load_only=options["load_only"],
                meters=tuple(label.strip() for label in options["meters"].split(",") if label.strip()),
                zones=tuple(zone.strip() for zone in options["zones"].split(",") if zone.strip()),
                window_sizes=tuple(size.strip().upper() for size in options["window_sizes"].split(",")),
                clickhouse_path=options["clickhouse"],
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write("")
        if options["load_only"]:
            self.stdout.write(f"{run.events:,} events loaded in {run.load_seconds or 0:.0f} s and kept")
            return
        loaded = f"loaded in {run.load_seconds:.0f} s" if run.load_seconds is not None else "reused"
        self.stdout.write(f"{run.events:,} events ({loaded}); one month of usage per query")
        if options["http"]:
            self.stdout.write(
                "queries reading rollups go over HTTP (POST /v1/events/usage/meter); raw scans in process"
            )
        if run.rollup_seconds is None:
            self.stdout.write("rollups: not used (--no-rollups): every query scans raw events")
        else:
            self.stdout.write(
                f"rollups brought up to date in {run.rollup_seconds:.1f} s; "
                f"a second refresh with nothing new took {run.idle_refresh_seconds:.3f} s"
            )
        self.stdout.write(f"load average (1, 5, 15 min): {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
        self.stdout.write(
            f"{'shape':<24} {'query':<30} {'scope':<17} {'p50 ms':>9} {'p95 ms':>9} {'runs':>5} "
            f"{'raw p50':>9} {'raw p95':>9}  target"
        )
        for timing in run.timings:
            statistic, limit = TARGETS_MS[timing.scope]
            measured = timing.p50_ms if statistic == "p50" else timing.p95_ms
            verdict = self.style.SUCCESS("met") if measured <= limit else self.style.WARNING("NOT met")
            raw = "".join(
                f" {value:>9.1f}" if value is not None else f" {'-':>9}"
                for value in (timing.raw_p50_ms, timing.raw_p95_ms)
            )
            self.stdout.write(
                f"{timing.shape:<24} {timing.label:<30} {timing.scope:<17} {timing.p50_ms:>9.1f} {timing.p95_ms:>9.1f} "
                f"{timing.runs:>5}{raw}  {statistic} ≤ {limit:g} ms {verdict}"
            )
        if run.clickhouse is not None:
            self._side_by_side(run)

    def _side_by_side(self, run) -> None:
        side = run.clickhouse
        first_shape = run.timings[0].shape if run.timings else ""
        postgres = {(t.label, t.scope): t for t in run.timings if t.shape == first_shape}
        self.stdout.write("")
        self.stdout.write(f"side by side, one month without windows ({first_shape}), p50 / p95 ms:")
        loaded = f"{run.load_seconds:.1f} s" if run.load_seconds is not None else "reused"
        self.stdout.write(
            f"  PostgreSQL: loaded {loaded}, {run.postgres_bytes / 2**20:,.0f} MiB (table and indexes); "
            f"ClickHouse (chdb): loaded {side.load_seconds:.1f} s, {side.bytes_on_disk / 2**20:,.0f} MiB"
        )
        self.stdout.write(
            f"  ClickHouse: every month but the newest merged into one part in {side.merge_seconds:.1f} s (as an "
            "hour after its last write); 'typical (newest)' is a typical customer in the newest month, left in parts"
        )
        verdict = "yes" if side.same_answers else f"NO: {', '.join(side.differences)}"
        self.stdout.write(f"  every meter, every customer, same month on both stores: {verdict}")
        self.stdout.write(
            f"  {'query':<30} {'scope':<17} {'PG raw p50':>11} {'PG rollups p50':>15} {'ClickHouse p50':>15} "
            f"{'ClickHouse p95':>15}"
        )
        for (label, scope), (p50, p95) in side.timings.items():
            timing = postgres.get((label, scope))
            raw = timing.raw_p50_ms if timing is not None and timing.raw_p50_ms is not None else None
            rolled = timing.p50_ms if timing is not None and timing.raw_p50_ms is not None else None
            if timing is not None and timing.raw_p50_ms is None:
                raw = timing.p50_ms  # --no-rollups: the PostgreSQL figures are raw scans
            cells = "".join(
                f" {value:>{width}.1f}" if value is not None else f" {'-':>{width}}"
                for value, width in ((raw, 11), (rolled, 15))
            )
            self.stdout.write(f"  {label:<30} {scope:<17}{cells} {p50:>15.1f} {p95:>15.1f}")
