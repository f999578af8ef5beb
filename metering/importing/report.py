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
    unknown_customers: int | None = None
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
        """The human summary printed by `import_events`."""
        if self.dry_run:
            head = (
                f"Dry run: nothing was written. {self.source} holds {self.records:,} records for environment "
                f"{self.environment} (validated in {self.seconds:.1f} s, {self.rate:,.0f} records/s)."
            )
            stored = f"  would store:        {self.stored:,} events ({self.duplicates:,} would replace stored events)"
        else:
            head = (
                f"Imported {self.source} into environment {self.environment}: {self.records:,} records in "
                f"{self.seconds:.1f} s ({self.rate:,.0f} records/s)."
            )
            stored = f"  stored:             {self.stored:,} events ({self.duplicates:,} replaced stored events)"
        lines = [head, stored]
        if self.collapsed:
            lines.append(f"  repeated event_id:  {self.collapsed:,} (the last occurrence in each batch was kept)")
        invalid = f"  invalid:            {self.invalid:,}"
        if self.invalid and self.rejects_path:
            invalid += f" (written to {self.rejects_path})"
        lines.append(invalid)
        lines.append(f"  no published meter: {self.unmetered:,} events (matched by event name; stored all the same)")
        if self.unknown_customers is not None:
            lines.append(f"  unknown customer:   {self.unknown_customers:,} events (stored all the same)")
        if self.ignored_columns:
            lines.append(f"  ignored columns:    {', '.join(self.ignored_columns)}")
        if self.samples:
            more = f" (first {len(self.samples)})" if self.invalid > len(self.samples) else ""
            lines.append(f"Invalid records{more}:")
            lines.extend(f"  line {sample.line}: {sample.reason()}" for sample in self.samples)
        return lines
