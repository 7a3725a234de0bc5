"""Spending periods in UTC: a day starts at midnight, a week on Monday, a month on the 1st.

Key limits with `limit_reset` count spend within the current period; a limit without a reset
counts all-time spend. Spend is counted in the period in which it is settled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

LIMIT_RESETS = ("daily", "weekly", "monthly")


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def period_starts(today: date) -> dict[str, date]:
    """The first day of the current daily, weekly and monthly period."""
    return {
        "daily": today,
        "weekly": today - timedelta(days=today.weekday()),
        "monthly": today.replace(day=1),
    }
