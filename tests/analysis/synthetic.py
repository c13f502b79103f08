"""Synthetic barometer responses shared by the analysis tests."""

import numpy as np
import pandas as pd

ATTRIBUTES = ["courtesy", "waiting_time", "clarity", "ease"]


def make_survey(n=600, *, seed=0, missing=0.05):
    """A small synthetic barometer: profile, 1-5 attributes with 'non concerné', overall."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age_band": rng.choice(["18-34", "35-64", "65+"], n, p=[0.3, 0.45, 0.25]),
            "sex": rng.choice(["F", "M"], n),
            "area": rng.choice(["centre", "nord", "sud"], n),
            "site": rng.integers(0, 12, n),
        }
    )
    latent = rng.normal(size=n)
    for k, name in enumerate(ATTRIBUTES):
        score = np.clip(np.round(3 + 0.8 * latent + rng.normal(0, 0.9 + 0.1 * k, n)), 1, 5)
        score[rng.random(n) < missing] = np.nan
        frame[name] = score
    drive = np.nan_to_num(frame[ATTRIBUTES].to_numpy() - 3) @ np.array([0.4, 0.3, 0.1, 0.2])
    frame["overall"] = np.clip(np.round(3 + drive + rng.normal(0, 0.7, n)), 1, 5)
    frame["weight"] = rng.uniform(0.5, 2.0, n)
    return frame
