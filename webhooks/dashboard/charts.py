"""Bar charts drawn on the server as inline SVG (`_chart.html`): no script, no chart
library, nothing the Content-Security-Policy would block. Each chart carries its numbers
as text too (the SVG's `<title>`/`<desc>`, a label per bar and a table)."""

from __future__ import annotations

from dataclasses import dataclass

from db.activity import DayActivity

WIDTH = 420
HEIGHT = 140
TOP = 12
BOTTOM = 22
"""Room under the bars for the first and last day's dates."""
LEFT = 34
"""Room left of the bars for the scale's top value."""


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    """What a screen reader and a hover say: the day and the value."""


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    description: str
    unit: str
    days: list[str]
    values: list[float | None]
    bars: list[Bar]
    top: float
    """The value at the top of the scale."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM

    def shown(self, value: float | None) -> str:
        return "–" if value is None else _number(value, self.unit)


def _number(value: float, unit: str) -> str:
    text = f"{value:.1f}" if unit == "s" else f"{value:.0f}"
    return f"{text} {unit}" if unit else text


def bar_chart(
    key: str, title: str, days: list[str], values: list[float | None], *, unit: str = ""
) -> Chart:
    """Bars for `values` (None: no bar, e.g. no reply that day) over `days`."""
    top = max((value for value in values if value is not None), default=0.0) or 1.0
    plot_width = WIDTH - LEFT - 4
    plot_height = HEIGHT - TOP - BOTTOM
    step = plot_width / max(len(values), 1)
    bars = []
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        height = 0.0 if value is None else plot_height * value / top
        bars.append(
            Bar(
                x=round(LEFT + n * step + step * 0.15, 1),
                y=round(TOP + plot_height - height, 1),
                width=round(step * 0.7, 1),
                height=round(height, 1),
                label=f"{day}: {'no data' if value is None else _number(value, unit)}",
            )
        )
    total = sum(value for value in values if value is not None)
    summary = (
        f"{len(days)} days from {days[0]} to {days[-1]}; highest {_number(top, unit)}"
        if days
        else "no days"
    )
    if unit != "s":
        summary += f"; {_number(total, unit)} in all"
    return Chart(key, title, summary, unit, days, values, bars, top)


def activity_charts(activity: list[DayActivity]) -> list[Chart]:
    """The four charts of a builder's (or every builder's) last days."""
    days = [each.day.isoformat() for each in activity]
    return [
        bar_chart("messages", "Messages per day", days, [each.messages for each in activity]),
        bar_chart("turns", "Turns per day", days, [each.turns for each in activity]),
        bar_chart("failures", "Failed turns per day", days, [each.failures for each in activity]),
        bar_chart(
            "reply-time",
            "Median reply time",
            days,
            [each.median_reply_seconds for each in activity],
            unit="s",
        ),
    ]
