"""The alert rule of SPEC §11 as plain functions: which level a usage is at, and which threshold a change crossed.

`above`: the level is the most severe one whose threshold the usage exceeds (`usage > threshold`). `below`: the most
severe one whose threshold the usage has fallen under (`usage < threshold`). Thresholds are ordered by the catalog's
rules (info ≤ warning ≤ critical for above, the reverse for below), so the most severe level reached is the
highest threshold exceeded, or the lowest one fallen under. No usage counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from alerts.models import AlertLevel

SEVERITY: dict[str, int] = {AlertLevel.OK: 0, AlertLevel.INFO: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}
LEVELS_BY_SEVERITY = (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.INFO)


@dataclass(frozen=True)
class LevelRule:
    """A feature's `alert_settings`, parsed once: the condition and the thresholds, most severe level first."""

    condition: str
    thresholds: tuple[tuple[str, Decimal], ...]

    def level(self, usage: Decimal | None) -> str:
        used = usage if usage is not None else Decimal(0)
        below = self.condition == "below"
        for level, threshold in self.thresholds:
            if (used < threshold) if below else (used > threshold):
                return level
        return AlertLevel.OK

    def crossed(self, from_level: str, to_level: str) -> Decimal | None:
        """The threshold a change crossed: that of the more severe of the two levels (None if it has none now)."""
        severe = from_level if SEVERITY[from_level] > SEVERITY[to_level] else to_level
        return dict(self.thresholds).get(severe)


def level_rule(settings: dict | None) -> LevelRule | None:
    """The rule of a feature's `alert_settings`, or None when its alerts are off (or name no level)."""
    settings = settings or {}
    levels = [level for level in LEVELS_BY_SEVERITY if isinstance(settings.get(level), dict)]
    if not settings.get("alert_enabled") or not levels:
        return None
    condition = next((settings[level].get("condition") for level in levels if settings[level].get("condition")), "")
    return LevelRule(
        condition=condition or "above",
        thresholds=tuple((level, Decimal(settings[level]["threshold"])) for level in levels),
    )


def alert_level(settings: dict | None, usage: Decimal | None) -> str:
    """The level of `usage` under the feature's `alert_settings`; `ok` when its alerts are off."""
    rule = level_rule(settings)
    return rule.level(usage) if rule is not None else AlertLevel.OK


def threshold_crossed(settings: dict | None, from_level: str, to_level: str) -> Decimal | None:
    rule = level_rule(settings)
    return rule.crossed(from_level, to_level) if rule is not None else None
