"""Benchmark of the manager's pages on the demo (figures, not pass/fail).

Usage: python bench/bench_reports.py [--months 24] [--per-month 1000] [--database URL [--reuse]]

On a new database (a temporary SQLite file, or the empty PostgreSQL database of
--database), fills the demo commune with `demo.generate` (the read model kept as the
responses are stored), then times, in one process:
  1. a service's report (`services.build_service_report`, the page's statistics: the
     organisation's family of trends and gaps, the importance-performance bootstrap,
     the comparison, the sites), cold (every cache emptied, no connection open) and
     warm (the same request again: a cache hit keyed by the data version);
  2. the manager's home for the director (every service in scope), cold and warm;
     then both again after a resident's response to the current month (outside the
     twelve complete months shown: still served from the cache);
  3. the cost the read model adds to one resident's submission: `storage.store_response`
     (its own transaction) with and without `results.record_responses`, per response,
     and their ratio.
The default size runs in a few minutes; see bench/README.md for larger ones.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from barometer import demo, storage  # noqa: E402
from barometer.extensions import db  # noqa: E402
from barometer.loader import load_surveys  # noqa: E402
from barometer.models import Response, Role, Service, User  # noqa: E402
from barometer.reports import services as reports  # noqa: E402
from barometer.steering import services as steering  # noqa: E402
from bench.bench_results import add_database_arguments, migrate, open_database  # noqa: E402
from surveys.schema import DEFAULT_ROOT  # noqa: E402

SERVICE = "piscine"
#: Submissions timed per case (and per round: the cases alternate, twice).
SUBMISSIONS = 200


def report_range(today: date) -> tuple[date, date]:
    """The pages' default: the twelve last complete months."""
    end = today.replace(day=1) - timedelta(days=1)
    start = (date(end.year - 1, end.month, 1) + timedelta(days=32)).replace(day=1)
    return start, end


def cold() -> None:
    """What a freshly started worker has: no cached result, no open connection."""
    steering.clear_cache()  # the steering's estimates, and the reports' caches
    db.session.remove()
    db.engine.dispose()


def timed(make) -> tuple[float, float]:
    """Wall and CPU seconds of a call (on a shared machine the CPU time is the steadier)."""
    start, cpu = time.perf_counter(), time.process_time()
    make()
    return time.perf_counter() - start, time.process_time() - cpu


def shown(times: list[tuple[float, float]]) -> str:
    wall, cpu = min(times)
    return f"{wall * 1e3:.1f} ms (CPU {cpu * 1e3:.1f} ms)"


def submission_cost(app, n: int = SUBMISSIONS) -> tuple[float, float]:
    """Seconds per `store_response` (one response, its own transaction), with and
    without the read model; the cases alternate and each keeps its best round."""
    with app.app_context():
        context = demo.get_survey(SERVICE)
        answers, _ = context.questionnaire.clean(
            {"overall": "4", "courtesy": "5", "waiting_time": "3", "age_band": "a30_44", "sex": "f"}
        )
        best = {True: float("inf"), False: float("inf")}
        saved = storage.record_responses
        for record in (True, False, True, False):
            if not record:
                storage.record_responses = lambda *args, **kwargs: None
            try:
                start = time.perf_counter()
                for i in range(n):
                    storage.store_response(
                        storage.Submission(
                            service_id=context.service_id,
                            version_id=context.version_id,
                            token=f"bench-{record}-{time.perf_counter_ns()}-{i}",
                            questionnaire=context.questionnaire,
                            answers=answers,
                            submitted_at=datetime.now(UTC),
                        )
                    )
                best[record] = min(best[record], (time.perf_counter() - start) / n)
            finally:
                storage.record_responses = saved
    return best[True], best[False]


def store_one(app, token: str) -> None:
    """One resident's response to the benchmarked service, now."""
    context = demo.get_survey(SERVICE)
    answers, _ = context.questionnaire.clean({"overall": "4", "courtesy": "5"})
    storage.store_response(
        storage.Submission(
            service_id=context.service_id,
            version_id=context.version_id,
            token=token,
            questionnaire=context.questionnaire,
            answers=answers,
            submitted_at=datetime.now(UTC),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--per-month", type=int, default=1000)
    add_database_arguments(parser)
    args = parser.parse_args()
    folder, url, app = open_database(args)
    with app.app_context():
        migrate(reuse=bool(args.reuse and args.database))
        if not (args.reuse and args.database):
            load_surveys(DEFAULT_ROOT)
            start = time.perf_counter()
            demo.generate(seed=1, months=args.months, per_month=args.per_month)
            print(f"demo: {time.perf_counter() - start:.1f} s")
            demo.add_users()
        stored = db.session.execute(select(func.count()).select_from(Response)).scalar_one()
        services = db.session.execute(select(func.count()).select_from(Service)).scalar_one()
        db.session.remove()
    print(f"database: {url.split(':')[0]}; {stored} responses, {services} services")

    start_day, end_day = report_range(datetime.now(UTC).date())
    with app.test_request_context("/?lang=fr"):
        director = db.session.execute(select(User).where(User.role == Role.director).order_by(User.id)).scalar_one()
        director_id = director.id

        def user():
            return db.session.get(User, director_id)

        def report():
            service = db.session.execute(select(Service).where(Service.slug == SERVICE)).scalar_one()
            reports.build_service_report(
                service,
                grain="month",
                start=start_day,
                end=end_day,
                lang="fr",
                viewer_scope=reports.viewer_scope(user()),
            )

        def home():
            reports.home_rows(user(), grain="month", start=start_day, end=end_day, lang="fr")

        # Each case cold then warm, twice; the best of the two rounds is printed.
        figures: dict[str, list[tuple[float, float]]] = {}
        for _ in range(2):
            for name, make in (("report", report), ("home", home)):
                cold()
                figures.setdefault(f"{name} cold", []).append(timed(make))
                figures.setdefault(f"{name} warm", []).append(timed(make))
        # The home once the organisation's shared parts are cached by a report.
        cold()
        report()
        figures["home after a report"] = [timed(home)]
        # A resident answers this month: the last twelve complete months have not
        # changed, so the report and the home are still served from the cache.
        home()
        store_one(app, "bench-this-month")
        figures["report after a response this month"] = [timed(report)]
        figures["home after a response this month"] = [timed(home)]
    print(f"service report ({SERVICE}, 12 months): cold {shown(figures['report cold'])}, ", end="")
    print(f"warm {shown(figures['report warm'])}")
    print(f"manager's home (director, {services} services): cold {shown(figures['home cold'])}, ", end="")
    print(f"warm {shown(figures['home warm'])}, after a report {shown(figures['home after a report'])}")
    print(
        "after a response to the current month: report "
        f"{shown(figures['report after a response this month'])}, home {shown(figures['home after a response this month'])}"
    )

    with_model, without = submission_cost(app)
    print(
        f"one submission (store_response): {with_model * 1e3:.2f} ms with the read model, "
        f"{without * 1e3:.2f} ms without (+{(with_model - without) * 1e3:.2f} ms, × {with_model / without:.2f})"
    )
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    folder.cleanup()


if __name__ == "__main__":
    main()
