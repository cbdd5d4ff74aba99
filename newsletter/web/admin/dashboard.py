"""The console's first page: subscribers by status, their movements, the latest digests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flask import render_template

from ...config import DASHBOARD_DAYS
from ...domain.dashboard import DayMovement, daily_movements, latest_digests, status_counts
from ...domain.feedback import feedback_since
from ...models import utcnow
from ..auth import staff_required
from .console import blueprint


def movement_chart(
    movements: Sequence[DayMovement], width: int = 720, height: int = 220
) -> dict[str, Any]:
    """Geometry of the dashboard's SVG line chart, computed here so the page needs no script."""
    left, right, top, bottom = 40, 10, 10, 30
    plot_width, plot_height = width - left - right, height - top - bottom
    peak = max([1, *(m.confirmations for m in movements), *(m.departures for m in movements)])
    step = plot_width / max(1, len(movements) - 1)

    def points(values: list[int]) -> str:
        return " ".join(
            f"{left + index * step:.1f},{top + plot_height - value / peak * plot_height:.1f}"
            for index, value in enumerate(values)
        )

    ticks = sorted({0, peak // 2, peak}) if peak > 1 else [0, 1]
    last = len(movements) - 1
    labels = [
        {
            "x": left + index * step,
            "text": movement.day.strftime("%d/%m"),
            # The first and last labels sit inside the drawing instead of being cut in half.
            "anchor": "start" if index == 0 else "end" if index == last else "middle",
        }
        for index, movement in enumerate(movements)
        if (index % 15 == 0 and last - index >= 8) or index == last
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": top + plot_height,
        "right": left + plot_width,
        "confirmations": points([m.confirmations for m in movements]),
        "departures": points([m.departures for m in movements]),
        "ticks": [{"y": top + plot_height - t / peak * plot_height, "text": t} for t in ticks],
        "labels": labels,
        "total_confirmations": sum(m.confirmations for m in movements),
        "total_departures": sum(m.departures for m in movements),
    }


@blueprint.get("/")
@staff_required
def dashboard():
    movements = daily_movements(DASHBOARD_DAYS)
    return render_template(
        "admin/dashboard.html",
        counts=status_counts(),
        # The days something happened, the latest first, for the table under the chart.
        active_days=[m for m in reversed(movements) if m.confirmations or m.departures],
        chart=movement_chart(movements),
        days=DASHBOARD_DAYS,
        digests=latest_digests(10),
        feedback=feedback_since(utcnow() - timedelta(days=DASHBOARD_DAYS)),
    )
