"""A little SVG writer: escaped elements, linear scales and round axis ticks."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

Attr = str | float | int


def element(tag: str, attrs: dict[str, Attr], *children: str) -> str:
    """`<tag ...>children</tag>`; attribute values are escaped, children are markup already."""
    rendered = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{_value(v)}"' for name, v in attrs.items()
    )
    if not children:
        return f"<{tag}{rendered}/>"
    return f"<{tag}{rendered}>{''.join(children)}</{tag}>"


def text(content: str, attrs: dict[str, Attr]) -> str:
    return element("text", attrs, escape(content))


def title(content: str) -> str:
    """A tooltip for the enclosing element."""
    return element("title", {}, escape(content))


def _value(value: Attr) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return escape(str(value), quote=True)


@dataclass(frozen=True)
class Scale:
    """Maps [low, high] of the data onto [start, stop] pixels (stop < start for a y axis)."""

    low: float
    high: float
    start: float
    stop: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.stop - self.start)


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round ticks from 0 up to at least `high` (1, 2 or 5 times a power of ten apart)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def svg(width: float, height: float, label: str, body: Sequence[str], css_class: str) -> str:
    return element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class_": css_class,
            "width": width,
            "height": height,
            "viewBox": f"0 0 {width:g} {height:g}",
            "role": "img",
            "aria_label": label,
        },
        title(label),
        *body,
    )
