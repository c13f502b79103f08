"""Charts: SVG that a strict page can hold inline, readable in black and white, no pyplot."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from barometer.caching import Lru
from barometer.charts import plot_drivers, plot_ipa, plot_segments, plot_trend, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def trend_data(n=12, break_at=7):
    values = np.linspace(0.8, 0.6, n)
    frame = pd.DataFrame(
        {
            "label": [f"m{i}" for i in range(n)],
            "value": values,
            "ci_low": values - 0.05,
            "ci_high": values + 0.05,
            "change": [None] * n,
            "version": [1] * break_at + [2] * (n - break_at),
        }
    )
    frame.loc[5, "change"] = "down"
    frame.loc[3, ["value", "ci_low", "ci_high"]] = np.nan  # an unpublished month
    return frame


IPA = pd.DataFrame(
    {
        "label": ["Accueil", "Délais", "Clarté", "Horaires"],
        "performance": [4.6, 2.4, 3.8, 3.5],
        "importance": [0.02, 0.4, 0.3, 0.1],
        "quadrant": ["possible_overkill", "concentrate_here", "keep_up", "low_priority"],
    }
)
DRIVERS = pd.DataFrame({"label": ["Accueil", "Délais", "Clarté"], "share": [0.1, 0.6, 0.3]})
PUBLICS = pd.DataFrame(
    {
        "label": ["75 ans et plus", "15 à 29 ans"],
        "gap": [-0.2, 0.02],
        "ci_low": [-0.3, -0.03],
        "ci_high": [-0.1, 0.07],
        "under_served": [True, False],
    }
)
CASES = {
    "trend": (plot_trend, trend_data(), {"target": 0.8}),
    "ipa": (plot_ipa, IPA, {"crosshairs": (3.6, 0.2)}),
    "drivers": (plot_drivers, DRIVERS, {}),
    "publics": (plot_segments, PUBLICS, {}),
}


def render(name: str) -> str:
    draw, data, options = CASES[name]
    return render_svg(draw, data, title=f"Titre <{name}>", desc="Données & tableau", prefix=f"c-{name}-", **options)


@pytest.mark.parametrize("name", CASES)
def test_a_chart_is_an_accessible_svg_without_inline_style(name):
    svg = render(name)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-labelledby") == f"c-{name}-title c-{name}-desc"
    assert root.find(f"{SVG}title").text == f"Titre <{name}>" and root.find(f"{SVG}desc").text == "Données & tableau"
    assert "&lt;" in svg  # the title is escaped text
    assert not re.search(r"\sstyle=", svg) and "<style" not in svg  # a strict CSP would drop them
    assert root.get("width") is None and root.get("viewBox")  # sized by the page
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert ids and all(i.startswith(f"c-{name}-") for i in ids) and len(ids) == len(set(ids))
    # Every reference points to an id of the same chart.
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', svg)
    assert {a or b for a, b in refs} <= set(ids)


@pytest.mark.parametrize("name", CASES)
def test_a_chart_reads_in_black_and_white(name):
    """Only greys: meaning rests on markers, line styles and hatching, never on colour."""
    colours = set(re.findall(r'(?:fill|stroke)="(#[0-9a-fA-F]{6})"', render(name)))
    assert colours
    for colour in colours:
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert r == g == b, colour


def test_the_trend_chart_marks_changes_breaks_and_bands_in_french():
    svg = render("trend")
    assert "Nouvelle version du questionnaire" in svg
    assert "Baisse significative" in svg and "Objectif" in svg and "Usagers satisfaits" in svg
    assert "<pattern" in svg  # the confidence band is hatched
    # The unpublished month and the new version each break the line: three pieces.
    lines = [
        el.get("d")
        for el in ET.fromstring(svg).iter(f"{SVG}path")
        if el.get("stroke-width") == "1.5" and el.get("fill") == "none"
    ]
    assert sum(d.count("M ") for d in lines) == 3


def test_the_ipa_chart_names_its_quadrants_and_draws_crosshairs():
    svg = render("ipa")
    for name in ("Besoins mal couverts", "Points forts à maintenir", "Faible priorité", "Sur-qualité possible"):
        assert name in svg
    assert svg.count("stroke-dasharray") >= 2
    for label in IPA["label"]:
        assert label in svg


def test_charts_are_drawn_without_pyplot():
    """Rendering never imports pyplot, whose global figure state is not thread-safe."""
    code = (
        "import sys\n"
        "from tests.barometer.test_charts import CASES, render\n"
        "for name in CASES: render(name)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_same_data_gives_the_same_svg_and_the_cache_keeps_a_bounded_number():
    assert render("drivers") == render("drivers")
    cache = Lru(2)
    made = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get_or_make(key, lambda key=key: made.append(key) or key)
    assert made == ["a", "b", "c", "b"] and len(cache) == 2
