"""Response scales shared by the estimators and models.

The questionnaire rates the overall satisfaction and each attribute on 1-5, and a
respondent is "satisfied" when they answer 4 or 5. "Non concerné" is stored as a
missing value, never as a score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FIVE_POINT", "SATISFIED", "check_scale"]

#: Bounds of the satisfaction scale (1 = "Pas du tout satisfait", 5 = "Très satisfait").
FIVE_POINT: tuple[int, int] = (1, 5)

#: Answers counted as satisfied for "% satisfaits".
SATISFIED: tuple[int, ...] = (4, 5)


def check_scale(values: pd.Series, scale: tuple[int, int] | None, *, column) -> None:
    """Raise ``ValueError`` naming ``column`` if a non-missing value is off ``scale``.

    ``scale=(low, high)`` declares an integer scale; ``None`` skips the check.
    """
    if scale is None:
        return
    low, high = scale
    v = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & (v.isna() | (v < low) | (v > high) | (v != np.round(v)))
    if bad.any():
        first = values[bad].iloc[0]
        raise ValueError(
            f"column {column!r} has value {first!r} outside its scale {low}-{high} "
            f"({int(bad.sum())} row(s)); code 'non concerné' as missing"
        )
