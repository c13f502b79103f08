"""The write path: atomic, idempotent, shared limits across workers."""

import fcntl
import os
import socket
import threading

import pytest

from barometer import storage
from barometer.extensions import db
from barometer.models import Answer, Response
from tests.helpers import count_rows, open_form, valid_submission


def counts(app) -> tuple[int, int]:
    return count_rows(app, Response), count_rows(app, Answer)


def test_a_failure_mid_write_leaves_nothing_and_the_retry_stores_once(surveys, monkeypatch):
    client = surveys.test_client()
    _, tokens = open_form(client)
    data = {"overall": "4", "courtesy": "5", "comment": "Très bien", **tokens}
    real = storage._DriverInsert.put
    written = []

    def crash(self, *args):  # the worker dies after the response row, before its answers
        written.append(args[-1])  # the new response's id: its row is in the transaction
        raise RuntimeError("worker killed")

    monkeypatch.setattr(storage._DriverInsert, "put", crash)
    surveys.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.post("/s/piscine", data=data).status_code == 500
    assert written and counts(surveys) == (0, 0)
    monkeypatch.setattr(storage._DriverInsert, "put", real)
    assert client.post("/s/piscine", data=data).status_code == 200
    assert client.post("/s/piscine", data=data).status_code == 200
    assert counts(surveys) == (1, 3)


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


def test_simultaneous_retries_of_one_token_store_one_response(surveys):
    submission = valid_submission(surveys, "piscine", "same-token")
    barrier = threading.Barrier(6)
    results = []

    def tap():
        with surveys.app_context():
            barrier.wait()
            results.append(storage.store_response(submission))
            db.session.remove()

    threads = [threading.Thread(target=tap) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert len({response_id for response_id, _ in results}) == 1
    assert counts(surveys) == (1, 2)


def test_a_row_refused_for_another_reason_than_its_token_is_an_error_and_leaves_nothing(surveys):
    orphan = valid_submission(surveys, "piscine", "an-orphan-token-000000", version_id=10**9)  # no such version
    with surveys.app_context():
        dbapi = db.engine.dialect.loaded_dbapi
        with pytest.raises(dbapi.IntegrityError):
            storage.store_response(orphan)
        db.session.remove()
    assert counts(surveys) == (0, 0)


def test_a_connection_that_cannot_roll_back_is_discarded_and_the_first_error_kept(surveys, monkeypatch):
    submission = valid_submission(surveys, "piscine", "a-lost-connection-0000")
    discarded = []

    with surveys.app_context():
        engine = db.engine
        pooled = engine.raw_connection

        class Unrecoverable:
            """A pooled connection lost mid-write: it cannot roll back either."""

            def __init__(self):
                self.connection = pooled()

            def __getattr__(self, name):
                return getattr(self.connection, name)

            def rollback(self):
                raise RuntimeError("connection lost")

            def invalidate(self):
                discarded.append(True)
                self.connection.invalidate()

        def crash(*args):
            raise ValueError("worker killed mid-write")

        monkeypatch.setattr(engine, "raw_connection", Unrecoverable)
        # After the response row is written, before its answers.
        monkeypatch.setattr(storage._DriverInsert, "put", crash)
        with pytest.raises(ValueError, match="worker killed mid-write"):
            storage.store_response(submission)
        monkeypatch.undo()  # SQLAlchemy's own connections come from raw_connection too
    assert discarded == [True]
    assert counts(surveys) == (0, 0)


def test_sqlite_writers_take_turns_on_the_lock_file_beside_the_database(surveys):
    """A worker's submission waits while another holds the turn, then is stored at once."""
    with surveys.app_context():
        url = db.engine.url
    if url.get_backend_name() != "sqlite":
        pytest.skip("a database server queues its writers itself: no lock file")
    submission = valid_submission(surveys, "piscine", "waits-for-its-turn-000")
    other_worker = open(f"{url.database}-writer", "a")  # noqa: SIM115  (another process's open file)
    fcntl.flock(other_worker, fcntl.LOCK_EX)
    writer = threading.Thread(target=lambda: _store_in(surveys, submission))
    try:
        writer.start()
        writer.join(0.3)
        assert writer.is_alive() and counts(surveys) == (0, 0)
    finally:
        fcntl.flock(other_worker, fcntl.LOCK_UN)
        other_worker.close()
    writer.join(5)
    assert not writer.is_alive() and counts(surveys) == (1, 2)


def _store_in(app, submission) -> None:
    with app.app_context():
        storage.store_response(submission)
        db.session.remove()
