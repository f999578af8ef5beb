"""What an import did: the counts and samples of rejected records `import_events` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from metering.importing.sources import Rejected


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do). `stored` counts distinct events written; `duplicates`
    how many of them replaced an event already stored; `unmetered` valid events whose event name has no
    published meter in the environment (stored all the same, SPEC §3)."""

    source: str
    environment: str
    dry_run: bool
    records: int = 0
    valid: int = 0
    invalid: int = 0
    stored: int = 0
    duplicates: int = 0
    unmetered: int = 0
    unknown_customers: int = 0
    seconds: float = 0.0
    samples: list[Rejected] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()
    rejects_path: str | None = None

    @property
    def collapsed(self) -> int:
        """Valid records that repeated an `event_id` within one batch: only the last occurrence is kept."""
        return self.valid - self.stored

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The human summary printed by `import_events`: the same lines for a dry run and a real run, the dry run
        saying "would" where the real run says what it did."""
        would = "would " if self.dry_run else ""
        if self.dry_run:
            head = f"Dry run of {self.source} for environment {self.environment}"
        else:
            head = f"Imported {self.source} into environment {self.environment}"
        head += f": {self.records:,} records in {self.seconds:.1f} s ({self.rate:,.0f} records/s)."
        if self.dry_run:
            head += " Nothing was written."
        replaced = "would replace" if self.dry_run else "replaced"
        lines = [
            head,
            f"  {'would store' if self.dry_run else 'stored'}:{' ' * (8 if self.dry_run else 13)}"
            f"{_events(self.stored)} ({self.duplicates:,} {replaced} stored events)",
        ]
        if self.collapsed:
            kept = "would be kept" if self.dry_run else "was kept"
            lines.append(f"  repeated event_id:  {self.collapsed:,} (the last occurrence in each batch {kept})")
        invalid = f"  invalid:            {self.invalid:,} record{'' if self.invalid == 1 else 's'}"
        if self.invalid and self.rejects_path:
            invalid += f" ({would}written to {self.rejects_path})"
        lines.append(invalid)
        stored_anyway = f"{'would be ' if self.dry_run else ''}stored all the same"
        lines.append(f"  no published meter: {_events(self.unmetered)} (matched by event name; {stored_anyway})")
        lines.append(f"  unknown customer:   {_events(self.unknown_customers)} ({stored_anyway})")
        if self.ignored_columns:
            lines.append(f"  ignored columns:    {', '.join(self.ignored_columns)}")
        if self.samples:
            more = f" (first {len(self.samples)})" if self.invalid > len(self.samples) else ""
            lines.append(f"Invalid records{more}:")
            lines.extend(f"  line {sample.line}: {sample.reason()}" for sample in self.samples)
        return lines


def _events(count: int) -> str:
    return f"{count:,} event{'' if count == 1 else 's'}"
