"""Benchmark of the analysis pipeline on synthetic barometer responses (figures, not pass/fail).

Usage: python bench/bench_analysis.py [--responses 1000000] [--seed 0]

Steps timed, on responses held wide in memory:
  1. every service x month estimate of the overall mean and % satisfied, with SEs
     (vectorised sufficient statistics);
  2. the trend of every service, with Benjamini-Hochberg control;
  3. drivers (LMG) and importance-performance quadrants of every service;
beside the time pandas takes to read the same responses from Parquet and from CSV, and
LMG alone for 8 drivers over 50,000 rows. Targets on a 2-core machine: pipeline within
10 s and 2 GB, LMG within 0.2 s.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.drivers import grouped_importance, relative_importance  # noqa: E402
from analysis.estimates import grouped_means, grouped_proportions  # noqa: E402
from analysis.ipa import bootstrap_ci, quadrants  # noqa: E402
from analysis.scales import SATISFIED  # noqa: E402
from analysis.trends import trends  # noqa: E402

ATTRIBUTES = [
    "courtesy",
    "waiting_time",
    "clarity",
    "ease",
    "opening_hours",
    "competence",
    "outcome",
    "fairness",
]
N_SERVICES = 200
N_MONTHS = 24


def generate(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic responses: 200 services, 24 months, 8 attributes with ~5% 'non concerné'."""
    rng = np.random.default_rng(seed)
    service = rng.integers(0, N_SERVICES, n)
    month = rng.integers(0, N_MONTHS, n)
    service_level = rng.normal(0, 0.5, N_SERVICES)
    service_drift = rng.normal(0, 0.01, N_SERVICES)
    latent = service_level[service] + service_drift[service] * month + rng.normal(0, 1, n)
    loadings = np.linspace(0.5, 0.9, len(ATTRIBUTES))
    scores = 3 + latent[:, None] * loadings + rng.normal(0, 0.8, (n, len(ATTRIBUTES)))
    scores = np.clip(np.round(scores), 1, 5)
    effects = np.linspace(0.05, 0.25, len(ATTRIBUTES))
    overall = np.clip(np.round(3 + (scores - 3) @ effects + rng.normal(0, 0.6, n)), 1, 5)
    scores[rng.random(scores.shape) < 0.05] = np.nan
    frame = pd.DataFrame(scores, columns=ATTRIBUTES)
    frame.insert(0, "month", month)
    frame.insert(0, "service", service)
    frame["overall"] = overall
    frame["age_band"] = pd.Categorical.from_codes(rng.integers(0, 5, n), ["15-29", "30-44", "45-59", "60-74", "75+"])
    frame["sex"] = pd.Categorical.from_codes(rng.integers(0, 2, n), ["F", "M"])
    frame["area"] = pd.Categorical.from_codes(rng.integers(0, 10, n), [f"q{i}" for i in range(10)])
    frame["weight"] = rng.uniform(0.5, 2.0, n)
    return frame


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def step_estimates(frame):
    means = grouped_means(frame, "overall", ["service", "month"], weights="weight")
    satisfied = grouped_proportions(frame, "overall", ["service", "month"], success=SATISFIED, weights="weight")
    return means, satisfied


def step_trends(means):
    return trends(means, by="service", period="month", value="value", se="se")


def step_drivers(frame):
    importance = grouped_importance(frame, "overall", ATTRIBUTES, "service", weights="weight")
    w = frame["weight"].to_numpy()
    x = frame[ATTRIBUTES].to_numpy()
    rated = ~np.isnan(x)
    sums = (
        pd.DataFrame(np.where(rated, x, 0.0) * w[:, None], columns=ATTRIBUTES)
        .groupby(frame["service"].to_numpy())
        .sum()
    )
    weights = pd.DataFrame(rated * w[:, None], columns=ATTRIBUTES).groupby(frame["service"].to_numpy()).sum()
    performance = sums / weights
    shares = importance.pivot(index="service", columns="driver", values="share")[ATTRIBUTES]
    results = {s: quadrants(performance.loc[s], shares.loc[s]) for s in performance.index}
    return importance, results


def peak_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7, help="runs of the LMG-alone timing")
    args = parser.parse_args(argv)

    frame, t_gen = timed(generate, args.responses, args.seed)
    rows = []
    (means, satisfied), t1 = timed(step_estimates, frame)
    rows.append((f"1. service x month estimates ({len(means)} cells x 2)", t1))
    trend_table, t2 = timed(step_trends, means)
    rows.append((f"2. trends of {len(trend_table)} services + BH", t2))
    (importance, quads), t3 = timed(step_drivers, frame)
    rows.append((f"3. LMG + quadrants of {len(quads)} services", t3))
    pipeline = t1 + t2 + t3
    peak = peak_mb()

    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "responses.parquet"
        csv = Path(tmp) / "responses.csv"
        frame.to_parquet(parquet)
        frame.to_csv(csv, index=False)
        _, t_parquet = timed(pd.read_parquet, parquet)
        _, t_csv = timed(pd.read_csv, csv)

    rng = np.random.default_rng(args.seed + 1)
    sample = frame.iloc[rng.choice(len(frame), size=min(50_000, len(frame)), replace=False)]
    lmg_runs = [timed(relative_importance, sample, "overall", ATTRIBUTES)[1] for _ in range(args.repeats)]
    t_lmg = statistics.median(lmg_runs)
    one_service = frame[frame["service"] == 0]
    boot_runs = [
        timed(bootstrap_ci, one_service, "overall", ATTRIBUTES, n_boot=200, seed=args.seed)[1] for _ in range(3)
    ]
    t_boot = statistics.median(boot_runs)

    width = 52
    print(
        f"analysis benchmark: {args.responses:,} responses, {N_SERVICES} services, "
        f"{N_MONTHS} months, {len(ATTRIBUTES)} attributes (seed {args.seed})"
    )
    print(f"{'step':<{width}} {'seconds':>9}")
    print("-" * (width + 10))
    print(f"{'generate data in memory (not counted)':<{width}} {t_gen:>9.3f}")
    for label, t in rows:
        print(f"{label:<{width}} {t:>9.3f}")
    print(f"{'pipeline total (target < 10 s)':<{width}} {pipeline:>9.3f}")
    print(f"{'read the same data from Parquet (pandas)':<{width}} {t_parquet:>9.3f}")
    print(f"{'read the same data from CSV (pandas)':<{width}} {t_csv:>9.3f}")
    print(f"{f'LMG alone, 8 drivers x {len(sample):,} rows (median of {args.repeats})':<{width}} {t_lmg:>9.4f}")
    print(f"{f'bootstrap CI, 200 resamples, 1 service ({len(one_service):,} rows)':<{width}} {t_boot:>9.4f}")
    print("-" * (width + 10))
    print(f"{'peak memory of the pipeline, MB (target < 2048)':<{width}} {peak:>9.0f}")
    flagged = (satisfied["flag"] != "ok").mean()
    print(
        f"cells not 'ok': {flagged:.1%}; services with a significant trend (BH 5%): "
        f"{int(trend_table['significant'].sum())}; "
        f"verdicts: pipeline {'within' if pipeline < 10 else 'OVER'} 10 s, "
        f"memory {'within' if peak < 2048 else 'OVER'} 2 GB, "
        f"LMG {'within' if t_lmg < 0.2 else 'OVER'} 0.2 s"
    )


if __name__ == "__main__":
    main()
