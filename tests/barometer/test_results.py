"""The results read model: kept by every bulk write, rebuilt alike, and the numbers it
gives equal those analysis/ computes from the respondents' frame."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from analysis import cells as ce
from analysis.drivers import relative_importance
from analysis.estimates import mean, proportion
from analysis.scales import SATISFIED
from analysis.segments import segment_gaps
from analysis.weighting import rake
from barometer import results, storage
from barometer.extensions import db
from barometer.frames import responses_frame
from barometer.models import Answer, Response, ResultCell, ResultMoments, ResultPack, ResultVersion, Service, Site
from barometer.respond.services import get_survey
from surveys.schema import PROFILE_KEYS
from tests.conftest import _make_app, empty_tables
from tests.helpers import VALID, valid_submission

RTOL = 1e-9
#: The planted services, and two without an effect.
SERVICES = ("piscine", "france-services", "urbanisme", "etat-civil", "decheterie", "mediatheque")


@pytest.fixture(scope="module")
def demo_app(_schema):
    """A short demo history (6 months, 2,000 responses a month), recorded as it is stored."""
    app = _make_app(_schema)
    result = app.test_cli_runner().invoke(args=["barometer", "demo", "--months", "6", "--per-month", "2000"])
    assert result.exit_code == 0, result.output
    yield app
    empty_tables(app)


def tables(app) -> dict[str, pd.DataFrame]:
    """The read model's rows, in key order."""
    with app.app_context(), db.engine.connect() as connection:
        out = {}
        for model in (ResultCell, ResultMoments):
            table = model.__table__
            frame = pd.read_sql(select(table).order_by(*table.primary_key.columns), connection)
            if "moments" in frame:
                frame["moments"] = [np.asarray(m, dtype=float) for m in frame["moments"]]
            out[table.name] = frame
        out["responses"] = dict(connection.execute(select(ResultVersion.service_id, ResultVersion.responses)).all())
        out["versions"] = dict(connection.execute(select(ResultVersion.service_id, ResultVersion.version)).all())
    return out


def assert_same_tables(a, b):
    pd.testing.assert_frame_equal(a["result_cell"], b["result_cell"])
    moments = ["moments"]
    pd.testing.assert_frame_equal(a["result_moments"].drop(columns=moments), b["result_moments"].drop(columns=moments))
    for x, y in zip(a["result_moments"]["moments"], b["result_moments"]["moments"], strict=True):
        np.testing.assert_array_equal(x, y)
    # A service without responses may have a version row (rebuilt) or none (never written).
    assert {k: v for k, v in a["responses"].items() if v} == {k: v for k, v in b["responses"].items() if v}


def scope(app, slug):
    """A service's cells, moments, respondents' frame (with site ids), drivers and margins."""
    with app.app_context():
        service = db.session.execute(select(Service).where(Service.slug == slug)).scalar_one()
        sites = {code: sid for sid, code in db.session.execute(select(Site.id, Site.code)).all()}
        frame = responses_frame(services=[slug])
        frame["site_id"] = pd.array([sites.get(code) for code in frame["site"]], dtype="Int64")
        cells = results.cells_frame([service.id])
        moments = results.moments_frame([service.id])
        margins = results.population_margins(service.organisation_id)
        drivers = [d for d in moments["variables"].iloc[0][1:]]
    return frame, cells, moments, drivers, margins


def as_tuple(est):
    return [est.value, est.se, est.ci_low, est.ci_high, est.n, est.n_eff, est.deff]


@pytest.mark.parametrize("slug", SERVICES)
def test_report_numbers_from_the_read_model_equal_those_from_the_respondents(demo_app, slug):
    frame, cells, moments, drivers, margins = scope(demo_app, slug)
    assert margins and set(margins) == {"age_band", "sex", "area"}
    assert len(frame) == cells.loc[cells["question_key"] == results.RESPONSES_KEY, "n"].sum() > 100
    recoded, completed = ce.complete_margins(frame, margins)
    on_units = rake(recoded, completed)
    on_cells = ce.rake_cells(cells, margins)
    compared = 0
    for raked in (False, True):
        for grain, by in (("month", ()), ("month", "period"), ("quarter", "period"), ("month", "site_id")):
            units, scoped = ce.with_period(frame, grain), ce.with_period(cells, grain)
            for key in ("overall", drivers[0]):
                for statistic in ("mean", "satisfied"):
                    got = ce.estimates(scoped, key, by=by, statistic=statistic, raking=on_cells if raked else None)
                    groups = [()] if not by else [(g,) for g in sorted(units[by].dropna().unique())]
                    assert len(got.table) == len(groups)
                    for group in groups:
                        inside = np.ones(len(units), bool) if not by else (units[by] == group[0]).fillna(False)
                        domain = units.assign(**{key: units[key].where(inside)})
                        weights = on_units if raked else None
                        if statistic == "mean":
                            expected = mean(domain, key, weights=weights)
                        else:
                            expected = proportion(domain, key, success=list(SATISFIED), weights=weights)
                        est = got.get(*group)
                        assert_allclose(as_tuple(est), as_tuple(expected), rtol=RTOL)
                        assert est.flag == expected.flag
                        compared += 1
        # Publics: every category of every profile column against the rest.
        expected = segment_gaps(frame, "overall", list(PROFILE_KEYS), weights=on_units if raked else None)
        got = ce.segment_gaps(cells, "overall", list(PROFILE_KEYS), raking=on_cells if raked else None)
        assert got[["column", "category", "flag", "under_served"]].equals(
            expected[["column", "category", "flag", "under_served"]]
        )
        numbers = ["n", "n_eff", "estimate", "se", "gap", "gap_se", "ci_low", "ci_high", "p", "p_adjusted"]
        assert_allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), rtol=RTOL)
        # Drivers: LMG shares of R², and R².
        expected = relative_importance(frame, "overall", drivers, weights=on_units.weights if raked else None)
        got = ce.relative_importance(moments, "overall", drivers, raking=on_cells if raked else None)
        assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=RTOL)
        assert got.attrs["n"] == expected.attrs["n"]
        assert got.attrs["r2"] == pytest.approx(expected.attrs["r2"], rel=RTOL)
    assert compared > 50


def test_the_planted_public_shows_in_the_read_model(demo_app):
    _, cells, _, _, margins = scope(demo_app, "france-services")
    plain = ce.segment_gaps(cells, "overall", "age_band").set_index("category")
    assert plain.loc["a75_plus", "gap"] < -0.5 and plain.loc["a75_plus", "under_served"]
    assert not plain.drop("a75_plus")["under_served"].any()
    # Raked, the over-75s weigh more but count less (effective n): still significant.
    raked = ce.segment_gaps(cells, "overall", "age_band", raking=ce.rake_cells(cells, margins)).set_index("category")
    assert raked.loc["a75_plus", "gap"] < -0.5 and raked.loc["a75_plus", "p_adjusted"] < 0.05
    assert raked.loc["a75_plus", "n_eff"] < plain.loc["a75_plus", "n_eff"]


def rows_as_frame(app, model, service_ids, keys=None) -> pd.DataFrame:
    """The frame `cells_frame` (or `moments_frame`) must give, made here from the
    table's rows alone, with pandas."""
    table = model.__table__
    query = select(table).where(table.c.service_id.in_(service_ids)).order_by(*table.primary_key.columns)
    if keys is not None:
        query = query.where(table.c.question_key.in_([results.RESPONSES_KEY, *keys]))
    with app.app_context(), db.engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    # The key's order, text in code-point order (the database's collation may differ).
    key = [c.name for c in table.primary_key.columns]
    frame = frame.assign(month=frame["month"].astype(str)).sort_values(key, kind="mergesort", ignore_index=True)
    month = frame.pop("month")
    frame.insert(1, "period", pd.PeriodIndex([pd.Period(str(m)[:7], freq="M") for m in month], freq="M"))
    frame["service_id"] = frame["service_id"].astype("int64")
    frame["site_id"] = pd.array(frame["site_id"].where(frame["site_id"] != results.NO_SITE), dtype="Int64")
    for column in ("question_key", *PROFILE_KEYS):
        if column in frame:
            values = frame[column].where(frame[column] != results.MISSING_CODE)
            frame[column] = pd.Categorical(values, categories=pd.Index(sorted(values.dropna().unique()), dtype=object))
    if "variables" in frame:
        frame["variables"] = [tuple(v.split(" ")) for v in frame["variables"]]
    return frame


def assert_same_frames(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    vectors = [c for c in ("moments",) if c in expected]
    pd.testing.assert_frame_equal(got.drop(columns=vectors), expected.drop(columns=vectors))
    for column in vectors:
        for x, y in zip(got[column], expected[column], strict=True):
            np.testing.assert_array_equal(x, np.asarray(y, dtype=float))


def test_packed_months_read_as_their_rows_and_never_stale(demo_app):
    """Past months are read from their packs once a reader has packed them; the frames
    are those of the rows, before and after packing, after a response to a packed month
    (its pack is stale: the rows are read and packed again), for several services and
    some keys; the current month is never packed."""
    app = demo_app
    with app.app_context():
        answered_ = (
            select(ResultVersion.service_id).where(ResultVersion.responses > 0).order_by(ResultVersion.service_id)
        )
        piscine = db.session.execute(select(Service.id).where(Service.slug == "piscine")).scalar_one()
        ids = sorted({*list(db.session.execute(answered_).scalars())[:3], piscine})
        assert len(ids) == 4
        db.session.execute(delete(ResultPack))
        db.session.commit()

    def packs():
        with app.app_context():
            query = select(ResultPack.service_id, ResultPack.month, ResultPack.version)
            return {
                (sid, month): version
                for sid, month, version in db.session.execute(query.where(ResultPack.kind == "cells"))
            }

    for round_ in ("rows", "packs"):
        with app.app_context():
            assert_same_frames(results.cells_frame(ids), rows_as_frame(app, ResultCell, ids))
            assert_same_frames(
                results.cells_frame(ids, keys=["overall"]), rows_as_frame(app, ResultCell, ids, ["overall"])
            )
            assert_same_frames(results.moments_frame(ids), rows_as_frame(app, ResultMoments, ids))
        if round_ == "rows":
            packed = packs()
            with app.app_context():
                months = set(
                    db.session.execute(
                        select(ResultCell.service_id, ResultCell.month).where(ResultCell.service_id.in_(ids))
                    ).all()
                )
            assert set(packed) == months
    # A response to a packed month: that month is read from its rows again, then repacked.
    with app.app_context():
        month = min(m for sid, m in packs() if sid == piscine)
        when = datetime(month.year, month.month, 3, 12, tzinfo=UTC)
        storage.store_responses([valid_submission(app, "piscine", "packed-1", dict(VALID), submitted_at=when)])
        before = packs()[(piscine, month)]
        assert_same_frames(results.cells_frame([piscine]), rows_as_frame(app, ResultCell, [piscine]))
        assert_same_frames(results.moments_frame([piscine]), rows_as_frame(app, ResultMoments, [piscine]))
        assert packs()[(piscine, month)] > before
        # After a bulk write, packing ahead of the readers (the demo, rebuild-results).
        storage.store_responses([valid_submission(app, "piscine", "packed-3", dict(VALID), submitted_at=when)])
        version = results.range_versions([piscine], month, month)[piscine]
        assert packs()[(piscine, month)] < version
        results.pack_services([piscine])
        assert packs()[(piscine, month)] == version
        assert_same_frames(results.cells_frame([piscine]), rows_as_frame(app, ResultCell, [piscine]))
        # A pack cut short is read as stale: the rows are read, and it is written anew.
        where = (ResultPack.service_id == piscine) & (ResultPack.month == month) & (ResultPack.kind == "cells")
        whole = db.session.execute(select(ResultPack.data).where(where)).scalar_one()
        db.session.execute(update(ResultPack).where(where).values(data=whole[: len(whole) // 2]))
        db.session.commit()
        assert_same_frames(results.cells_frame([piscine]), rows_as_frame(app, ResultCell, [piscine]))
        assert db.session.execute(select(ResultPack.data).where(where)).scalar_one() == whole
        # This month changes with every response: never packed.
        now = datetime.now(UTC)
        storage.store_responses([valid_submission(app, "piscine", "packed-2", dict(VALID), submitted_at=now)])
        frame = results.cells_frame([piscine])
        assert_same_frames(frame, rows_as_frame(app, ResultCell, [piscine]))
        assert str(frame["period"].iloc[-1]) == now.strftime("%Y-%m")
        assert (piscine, now.date().replace(day=1)) not in packs()


def test_a_date_range_reads_only_its_months(demo_app):
    frame, cells, _, _, _ = scope(demo_app, "piscine")
    months = sorted(cells["period"].unique())
    with demo_app.app_context():
        service_id = int(cells["service_id"].iloc[0])
        part = results.cells_frame([service_id], start=months[1].start_time.date(), end=months[2].end_time.date())
        only = results.cells_frame([service_id], keys=["overall"])
    assert sorted(part["period"].unique()) == months[1:3]
    assert set(only["question_key"]) == {"overall", results.RESPONSES_KEY}
    est = ce.estimate(part, "overall")
    assert est.n == frame["overall"].loc[frame["period"].isin(months[1:3])].notna().sum()


def test_rebuild_gives_the_tables_the_incremental_updates_gave(demo_app):
    recorded = tables(demo_app)
    with demo_app.app_context(), db.engine.begin() as connection:
        # Damage the read model: a repair must put it right.
        connection.execute(ResultCell.__table__.update().values(n=ResultCell.n + 1))
        connection.execute(ResultMoments.__table__.delete().where(ResultMoments.site_id == results.NO_SITE))
    result = demo_app.test_cli_runner().invoke(args=["barometer", "rebuild-results"])
    assert result.exit_code == 0, result.output
    assert "Résultats recalculés" in result.output and "[1/" in result.output
    rebuilt = tables(demo_app)
    assert_same_tables(rebuilt, recorded)
    # Caches keyed on the data version see the change.
    assert all(rebuilt["versions"][s] > recorded["versions"][s] for s in recorded["versions"])


def test_rebuild_of_one_service_and_an_unknown_one(demo_app):
    before = tables(demo_app)
    runner = demo_app.test_cli_runner()
    result = runner.invoke(args=["barometer", "rebuild-results", "--service", "piscine"])
    assert result.exit_code == 0, result.output
    assert "[1/1] piscine" in result.output
    after = tables(demo_app)
    assert_same_tables(after, before)
    with demo_app.app_context():
        piscine = db.session.execute(select(Service.id).where(Service.slug == "piscine")).scalar_one()
    changed = {s for s in before["versions"] if after["versions"][s] != before["versions"][s]}
    assert changed == {piscine}
    result = runner.invoke(args=["barometer", "rebuild-results", "--service", "nulle-part"])
    assert result.exit_code == 1 and "service inconnu : nulle-part" in result.output


# ------------------------------------------------------------------ kept up to date
# On the demo's database, in a month long before its history, so that the cells written
# here are the only ones of their month.

LONG_AGO = datetime(2001, 3, 14, 9, 30, tzinfo=UTC)


def answered(app, token, answers=None, **fields):
    return valid_submission(app, "piscine", token, dict(answers or VALID), submitted_at=LONG_AGO, **fields)


def read_model(app, slug="piscine"):
    """A service's cells and moments of the month LONG_AGO, and its data version."""
    with app.app_context():
        service_id = db.session.execute(select(Service.id).where(Service.slug == slug)).scalar_one()
        month = LONG_AGO.date()
        cells = results.cells_frame([service_id], start=month, end=month)
        moments = results.moments_frame([service_id], start=month, end=month)
        version = results.data_versions([service_id])[service_id]
    return cells, moments, version


def test_store_responses_records_each_response_once(demo_app):
    app = demo_app
    _, _, before = read_model(app)
    with app.app_context():
        assert storage.store_responses([answered(app, f"t{i}") for i in range(3)]) == 3
    cells, moments, version = read_model(app)
    assert version == before + 1
    row = cells.set_index("question_key").loc["overall"]
    assert (row["n"], row["total"], row["total_sq"], row["satisfied"]) == (3, 12.0, 48.0, 3)
    assert str(row["period"]) == "2001-03" and pd.isna(row["site_id"])
    assert (row["age_band"], row["sex"], row["area"], row["frequency"]) == ("a30_44", "f", "nord", "regular")
    assert cells.set_index("question_key").loc[results.RESPONSES_KEY, "n"] == 3
    # "Non concerné" is no answer; the comment and choices are not numbers.
    assert "clarity" not in set(cells["question_key"]) and "comment" not in set(cells["question_key"])
    # "clarity", a driver, is answered "non concerné": no complete row for the moments.
    assert moments.empty

    # A batch holding a token stored before is refused whole, the read model with it.
    with app.app_context(), pytest.raises(IntegrityError):
        storage.store_responses([answered(app, "t9"), answered(app, "t1")])
    again, _, unchanged = read_model(app)
    pd.testing.assert_frame_equal(again, cells)
    assert unchanged == version


def test_one_submission_is_recorded_once_in_its_transaction(demo_app):
    app = demo_app
    with app.app_context():
        drivers = get_survey("piscine").questionnaire.drivers
    complete = {**VALID, **{key: "4" for key in drivers}, "courtesy": "5", "waiting_time": "2"}
    sub = answered(app, "one", complete, site_id=None)
    _, _, before = read_model(app)
    with app.app_context():
        # The resident's own write path, in its one transaction; the same token again
        # (a double tap) stores nothing and records nothing.
        assert storage.store_response(sub) is True
        assert storage.store_response(sub) is False
    cells, moments, version = read_model(app)
    assert version == before + 1
    assert len(moments) == 1 and moments["n"].item() == 1
    variables = moments["variables"].item()
    assert variables == ("overall", *drivers)
    values = [float(sub.answers[k]) for k in variables]
    assert_allclose(moments["moments"].item()[1 : len(values) + 1], values)
    # A second response in the same cell is added to the stored moments.
    with app.app_context():
        storage.store_responses([answered(app, "two", complete)])
    cells, moments, _ = read_model(app)
    assert moments["n"].item() == 2
    assert_allclose(moments["moments"].item()[1 : len(values) + 1], [2 * v for v in values])
    # What a rebuild finds from the stored rows is what was recorded.
    recorded = tables(app)
    with app.app_context(), db.engine.begin() as connection:
        results.rebuild_service(connection, sub.service_id)
    assert_same_tables(tables(app), recorded)


def test_a_date_range_version_changes_with_its_months_only(demo_app):
    """A response to one month changes the version of the ranges that hold that month,
    and leaves the others (the last twelve months' reports stay cached while residents
    answer this month); a rebuild changes every range; a version is never lowered."""
    app = demo_app
    long_ago = (LONG_AGO.date(), LONG_AGO.date())
    other = (datetime(2001, 5, 1).date(), datetime(2001, 5, 31).date())
    spanning = (datetime(2001, 1, 1).date(), datetime(2001, 12, 31).date())
    with app.app_context():
        service_id = db.session.execute(select(Service.id).where(Service.slug == "piscine")).scalar_one()

        def versions():
            return {r: results.range_versions([service_id], *r)[service_id] for r in (long_ago, other, spanning)}

        before = versions()
        storage.store_responses([answered(app, "range-1")])
        after = versions()
        assert after[long_ago] > before[long_ago] and after[spanning] > before[spanning]
        assert after[other] == before[other] == 0
        may = datetime(2001, 5, 2, 10, tzinfo=UTC)
        storage.store_responses([valid_submission(app, "piscine", "range-2", dict(VALID), submitted_at=may)])
        later = versions()
        assert later[long_ago] == after[long_ago]
        assert later[other] > 0 and later[spanning] > after[spanning]
        with db.engine.begin() as connection:
            results.rebuild_service(connection, service_id)
        rebuilt = versions()
        assert all(rebuilt[r] > later[r] for r in rebuilt)
        # Other services' ranges are theirs alone.
        assert results.range_versions([service_id + 1000], *spanning) == {service_id + 1000: 0}


def test_rebuild_of_a_service_without_responses_empties_it(demo_app):
    app = demo_app
    with app.app_context():
        service = db.session.execute(select(Service).where(Service.is_open.is_(False))).scalars().first()
        before = results.data_versions([service.id])[service.id]
        context = get_survey(service.slug)
        cleaned, _ = context.questionnaire.clean({"overall": "2"})
        sub = storage.Submission(
            service_id=service.id,
            version_id=context.version_id,
            token="gone",
            questionnaire=context.questionnaire,
            answers=cleaned,
            submitted_at=LONG_AGO,
        )
        storage.store_responses([sub])
        assert not results.cells_frame([service.id]).empty
        db.session.execute(
            delete(Answer).where(Answer.response_id.in_(select(Response.id).where(Response.token == "gone")))
        )
        db.session.execute(delete(Response).where(Response.token == "gone"))
        db.session.commit()
        with db.engine.begin() as connection:
            assert results.rebuild_service(connection, service.id) == 0
        assert results.cells_frame([service.id]).empty
        assert results.data_versions([service.id]) == {service.id: before + 2}
        organisation = service.organisation_id
        assert results.population_margins(organisation)["sex"] == {"f": 0.52, "m": 0.48}


def test_demo_responses_deleted_take_their_results_with_them(demo_app):
    # Last of the module: it empties the demo history the tests above share.
    from barometer import demo

    with demo_app.app_context():
        ids = db.session.execute(select(Service.id)).scalars().all()
        versions = results.data_versions(ids)
        assert not results.cells_frame(ids).empty
        assert demo.delete_responses() > 0
        assert results.cells_frame(ids).empty and results.moments_frame(ids).empty
        assert all(v > versions[s] for s, v in results.data_versions(ids).items())
