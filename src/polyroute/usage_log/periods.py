"""Usage periods in UTC: day starts at midnight, week on Monday, month on the 1st."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def period_starts(now: datetime | None = None) -> dict[str, datetime]:
    now = now or datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "daily": day,
        "weekly": day - timedelta(days=day.weekday()),
        "monthly": day.replace(day=1),
    }
