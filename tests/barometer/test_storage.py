"""The write path: one transaction committed before the thank-you, once per token,
a failing database said to the resident and logged once per episode."""

import logging
import os
import socket
import threading

import pytest
from sqlalchemy.exc import OperationalError

from barometer import storage
from barometer.extensions import db
from barometer.models import Answer, Response
from tests.helpers import VALID, checked, count_rows, open_form, valid_submission


@pytest.fixture(autouse=True)
def _no_episode_running():
    """Each test starts with the database writing fine, as far as this process knows."""
    saved, storage.write_failures = storage.write_failures, storage.WriteFailures()
    yield
    storage.write_failures = saved


def counts(app) -> tuple[int, int]:
    return count_rows(app, Response), count_rows(app, Answer)


def _database_fails(*args):
    raise OperationalError("INSERT ...", {}, Exception("disk I/O error"))


UNAVAILABLE = "Votre réponse n'a pas pu être enregistrée : le service est momentanément indisponible."


def test_a_failing_database_gets_the_survey_back_with_every_answer_and_stores_nothing(surveys, monkeypatch):
    client = surveys.test_client()
    _, tokens = open_form(client)
    data = {**VALID, **tokens}
    # The write fails after the response and its answers are inserted, before the commit.
    monkeypatch.setattr(storage, "_after_insert", _database_fails)
    page = client.post("/s/piscine", data=data)
    html = page.get_data(as_text=True)
    assert page.status_code == 503
    assert UNAVAILABLE in html and "Merci" not in html
    assert page.headers.get("Set-Cookie") is None
    assert checked(html, "overall", "4") and checked(html, "courtesy", "5") and checked(html, "sex", "f")
    assert checked(html, "important_attributes", "ease")
    assert "06 11 22 33 44</textarea>" in html
    assert counts(surveys) == (0, 0)
    monkeypatch.undo()
    # Sent again once the database is back (the page's fresh token, or the first one).
    assert client.post("/s/piscine", data=data).status_code == 200
    assert client.post("/s/piscine", data=data).status_code == 200
    assert counts(surveys) == (1, 10)


def test_a_failing_database_is_logged_once_per_episode_with_a_count(surveys, monkeypatch, caplog):
    client = surveys.test_client()
    caplog.set_level(logging.WARNING, logger="barometer.storage")
    monkeypatch.setattr(storage, "_after_insert", _database_fails)
    for _ in range(5):
        _, tokens = open_form(client)
        assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 503
    failures = [r for r in caplog.records if r.name == "barometer.storage"]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR and failures[0].exc_info
    monkeypatch.undo()
    for _ in range(2):
        _, tokens = open_form(client)
        assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    records = [r for r in caplog.records if r.name == "barometer.storage"]
    assert len(records) == 2
    assert records[1].levelno == logging.WARNING and "5 responses refused" in records[1].getMessage()
    assert counts(surveys)[0] == 2


def test_a_long_episode_is_recalled_with_its_count_at_most_once_a_minute(monkeypatch, caplog):
    failures = storage.WriteFailures()
    clock = iter([0.0, 10.0, 30.0, 61.0, 62.0, 200.0])
    monkeypatch.setattr(storage.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.WARNING, logger="barometer.storage")
    for _ in range(5):
        failures.failed(RuntimeError("database away"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "4 responses refused in 61 s" in messages[1]
    failures.succeeded()
    assert "5 responses refused in 200 s" in caplog.records[-1].getMessage()
    assert failures.count == 0


def test_twenty_concurrent_retries_of_one_form_store_one_response_and_all_get_thanks(surveys, app_factory):
    """A double tap, a refresh, a phone retrying on a bad network: many requests with
    one form's token at once, in several threads (workers share the database)."""
    app = app_factory(SURVEY_RATE_LIMIT="1000 per minute")
    _, tokens = open_form(app.test_client())
    data = {**VALID, **tokens}
    barrier = threading.Barrier(20)
    replies = []

    def tap():
        client = app.test_client()
        barrier.wait()
        reply = client.post("/s/piscine", data=data)
        replies.append((reply.status_code, "Merci !" in reply.get_data(as_text=True)))

    threads = [threading.Thread(target=tap) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert replies == [(200, True)] * 20
    assert counts(surveys) == (1, 10)


def test_simultaneous_stores_of_one_token_make_one_new_response(surveys):
    submission = valid_submission(surveys, "piscine", "same-token")
    barrier = threading.Barrier(20)
    created = []

    def tap():
        with surveys.app_context():
            barrier.wait()
            created.append(storage.store_response(submission))

    threads = [threading.Thread(target=tap) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 19 + [True]
    assert counts(surveys) == (1, 2)


def test_a_row_refused_for_another_reason_than_its_token_leaves_nothing(surveys):
    orphan = valid_submission(surveys, "piscine", "an-orphan-token-000000", version_id=10**9)  # no such version
    with surveys.app_context(), pytest.raises(storage.StorageUnavailable):
        storage.store_response(orphan)
    assert counts(surveys) == (0, 0)


def test_bulk_writes_store_every_response_with_its_answers(surveys):
    subs = [valid_submission(surveys, "piscine", f"bulk-{i:04d}") for i in range(30)]
    with surveys.app_context():
        assert storage.store_responses(subs, batch=7) == 30
    assert counts(surveys) == (30, 60)


def test_sqlite_files_are_written_ahead_and_wait_for_a_busy_writer(surveys):
    with surveys.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("SQLite's own settings")
        with db.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert (mode, timeout) == ("wal", 10000)


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def test_two_workers_share_the_rate_limit_through_redis(surveys, app_factory):
    import redis

    if not _redis_up():
        reason = "no Redis on 127.0.0.1:6379 to share the limits"
        if os.environ.get("REDIS") == "required":
            pytest.fail(reason + " (REDIS=required)", pytrace=False)
        pytest.skip(reason)

    redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()
    settings = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15", "SURVEY_RATE_LIMIT": "3 per minute"}
    workers = [app_factory(**settings).test_client() for _ in range(2)]
    statuses = []
    for i in range(4):
        client = workers[i % 2]
        _, tokens = open_form(client)
        statuses.append(client.post("/s/piscine", data={"overall": "4", **tokens}).status_code)
    assert statuses == [200, 200, 200, 429]
    assert counts(surveys)[0] == 3
    redis.Redis.from_url("redis://127.0.0.1:6379/15").flushdb()


def test_a_comment_of_hidden_characters_only_is_stored_as_no_comment(surveys):
    client = surveys.test_client()
    _, tokens = open_form(client)
    hidden = "\u200b\u202e\u2066 \u200b"
    assert client.post("/s/piscine", data={**VALID, "comment": hidden, **tokens}).status_code == 200
    with surveys.app_context():
        keys = db.session.scalars(db.select(Answer.question_key)).all()
    assert "comment" not in keys and "overall" in keys
