"""The alert rule of SPEC §11 as plain functions: which level a usage is at, and which threshold a change crossed.

`above`: the level is the most severe one whose threshold the usage exceeds (`usage > threshold`). `below`: the most
severe one whose threshold the usage has fallen under (`usage < threshold`). Thresholds are ordered by the catalog's
rules (info ≤ warning ≤ critical for above, the reverse for below), so the most severe level reached is the
highest threshold exceeded, or the lowest one fallen under.
"""

from __future__ import annotations

from decimal import Decimal

from alerts.models import AlertLevel

SEVERITY: dict[str, int] = {AlertLevel.OK: 0, AlertLevel.INFO: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}
LEVELS_BY_SEVERITY = (AlertLevel.CRITICAL, AlertLevel.WARNING, AlertLevel.INFO)


def alerts_enabled(settings: dict | None) -> bool:
    settings = settings or {}
    return bool(settings.get("alert_enabled")) and any(level in settings for level in LEVELS_BY_SEVERITY)


def thresholds(settings: dict) -> dict[str, Decimal]:
    """{level: threshold} of the configured levels."""
    return {level: Decimal(settings[level]["threshold"]) for level in LEVELS_BY_SEVERITY if level in settings}


def condition_of(settings: dict) -> str:
    for level in LEVELS_BY_SEVERITY:
        if level in settings:
            return settings[level].get("condition") or "above"
    return "above"


def alert_level(settings: dict, usage: Decimal | None) -> str:
    """The level of `usage` (no usage counts as 0) under the feature's `alert_settings`; `ok` when alerts are off."""
    if not alerts_enabled(settings):
        return AlertLevel.OK
    used = usage if usage is not None else Decimal(0)
    below = condition_of(settings) == "below"
    for level, threshold in thresholds(settings).items():  # most severe first
        if (used < threshold) if below else (used > threshold):
            return level
    return AlertLevel.OK


def threshold_crossed(settings: dict, from_level: str, to_level: str) -> Decimal | None:
    """The threshold a change crossed: that of the more severe of the two levels (None if it has none now)."""
    severe = from_level if SEVERITY[from_level] > SEVERITY[to_level] else to_level
    found = thresholds(settings or {}).get(severe)
    return found
