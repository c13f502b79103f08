"""The overview's heatmap: each policy's share satisfied against its target, year by year.

Drawn on a :class:`matplotlib.figure.Figure` (never ``pyplot``, which is not thread-safe)
and written as SVG. It reads without colour: every cell prints its share and its gap to
the target, a cell without a published estimate is hatched and says so, and the page
gives the same numbers as a table. The SVG is shown as an image (a ``data:`` URI): the
page's Content-Security-Policy refuses the inline styles matplotlib writes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: The gap to the target (share) at which the colour saturates.
SATURATION = 0.2
#: A colour-blind-safe diverging map (purple below the target, orange above).
COLORMAP = "PuOr_r"


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def _points(gap: float) -> str:
    return f"{round(100 * gap):+d} pt".replace("-", "−")  # rounded first: never "−0"


def plot_heatmap(rows: Sequence, years: Sequence[int], *, ax, no_data: str, no_target: str):
    """Draw ``rows`` (`services.HeatmapRow`) × ``years`` on ``ax``: colour by the gap to
    the target, each cell's share and gap written in it; returns ``ax``."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    cmap = colormaps[COLORMAP]
    norm = Normalize(-SATURATION, SATURATION)
    n, m = len(rows), len(years)
    ax.set_xlim(0, m)
    ax.set_ylim(n, 0)
    for i, row in enumerate(rows):
        for j, (value, _flag) in enumerate(row.cells):
            if value is None:
                ax.add_patch(_rect(j, i, facecolor="white", hatch="//", edgecolor="#767676"))
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    no_data,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#1e1e1e",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
                )
                continue
            if row.target is None:
                ax.add_patch(_rect(j, i, facecolor="#f2f2f2", edgecolor="white"))
                ax.text(j + 0.5, i + 0.5, f"{_percent(value)} · {no_target}", ha="center", va="center", fontsize=8)
                continue
            gap = value - row.target
            colour = cmap(norm(np.clip(gap, -SATURATION, SATURATION)))
            ax.add_patch(_rect(j, i, facecolor=colour, edgecolor="white"))
            light = 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2] > 0.45
            ax.text(
                j + 0.5,
                i + 0.5,
                f"{_percent(value)} ({_points(gap)})",
                ha="center",
                va="center",
                fontsize=8,
                color="#1e1e1e" if light else "white",
            )
    ax.set_xticks(np.arange(m) + 0.5, [str(y) for y in years])
    ax.set_yticks(np.arange(n) + 0.5, [r.label for r in rows], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return ax


def _rect(x, y, **style):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, linewidth=1, **style)


@lru_cache(maxsize=32)
def heatmap_svg(rows: tuple, years: tuple[int, ...], *, title: str, no_data: str, no_target: str) -> str:
    """The heatmap as an SVG ``data:`` URI; the same rows (frozen, hashable) give the
    same picture, drawn once."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    height = 0.6 + 0.3 * max(len(rows), 1)
    fig = Figure(figsize=(8.5, height), layout="constrained")
    ax = fig.add_subplot()
    plot_heatmap(rows, years, ax=ax, no_data=no_data, no_target=no_target)
    fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    # Text stays text: a much smaller file than glyphs drawn as paths.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "pilotage"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
