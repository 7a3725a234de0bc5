"""Server-rendered SVG bar charts (stacked by group) for the activity page: no JavaScript needed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626")
WIDTH, HEIGHT, PAD = 600, 160, 4


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    metric: str
    label: str
    total: float
    bars: list[Bar]
    legend: list[tuple[str, str]]
    width: int = WIDTH
    height: int = HEIGHT


def stacked_chart(
    rows: list[dict[str, Any]], days: list[date], metric: str, label: str, names: dict[str, str], fmt: Any
) -> Chart:
    groups = sorted({row["group"] for row in rows})
    colors = {group: PALETTE[i % len(PALETTE)] for i, group in enumerate(groups)}
    per_day: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        per_day[row["day"]][row["group"]] = row[metric]
    peak = max((sum(values.values()) for values in per_day.values()), default=0) or 1
    slot = WIDTH / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        bottom = float(HEIGHT)
        for group in groups:
            value = per_day.get(day.isoformat(), {}).get(group, 0)
            if not value:
                continue
            height = max(1.0, (HEIGHT - PAD) * value / peak)
            bottom -= height
            title = f"{day.isoformat()} {names.get(group, group)}: {fmt(value)}"
            bars.append(Bar(index * slot + 1, bottom, max(slot - 2, 1), height, colors[group], title))
    total = sum(row[metric] for row in rows)
    return Chart(metric, label, total, bars, [(names.get(g, g), colors[g]) for g in groups])
