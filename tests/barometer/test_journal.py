"""The responses' journal: taken at once, written in batches, never lost nor doubled."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from barometer import create_app, storage
from barometer.config import TestConfig
from barometer.extensions import db
from barometer.journal import Journal
from barometer.models import Answer, Response
from tests.helpers import count_rows, open_form, valid_submission

NEVER = 3600  # seconds: the thread never flushes during a test; the test does


@pytest.fixture
def journaled(app_factory, tmp_path):
    """The app with its journal in a folder of the test's, flushed only when asked."""
    from barometer.loader import load_surveys
    from surveys.schema import DEFAULT_ROOT

    app = app_factory(RESPONSE_FLUSH_SECONDS=NEVER, RESPONSE_JOURNAL_DIR=str(tmp_path / "pending"))
    with app.app_context():
        load_surveys(DEFAULT_ROOT)
    yield app
    app.extensions["response_journal"].close()


def journal_of(app) -> Journal:
    return app.extensions["response_journal"]


def journal_files(app) -> list:
    return sorted(journal_of(app).directory.glob("*.jsonl"))


def another_journal(app) -> Journal:
    """A second process's journal of the same database (its own files and locks)."""
    with app.app_context():
        engine = db.engine
    return Journal(journal_of(app).directory, partial(storage.store_journaled, engine), NEVER)


def stored_answers(app) -> dict[str, tuple]:
    with app.app_context():
        rows = db.session.execute(select(Answer.question_key, Answer.value, Answer.choice, Answer.text)).all()
    return {key: (value, choice, text) for key, value, choice, text in rows}


def write_orphan(app, name: str, lines: list[str]) -> None:
    """A journal file left by a process that died before writing it."""
    (journal_of(app).directory / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def line_of(submission) -> str:
    return json.dumps(storage.journal_record(submission))


def test_a_submission_is_journaled_at_once_and_stored_with_its_answers_by_the_flush(journaled):
    client = journaled.test_client()
    _, tokens = open_form(client)
    data = {
        "overall": "4",
        "courtesy": "5",
        "waiting_time": "na",
        "comment": "Écrivez-moi : jean@example.org",
        **tokens,
    }
    page = client.post("/s/piscine", data=data)
    assert page.status_code == 200 and "Merci" in page.get_data(as_text=True)
    # Taken: in the journal's file, not yet in the database.
    (file,) = journal_files(journaled)
    assert count_rows(journaled, Response) == 0
    assert "jean@example.org" not in file.read_text(encoding="utf-8")  # masked before any disk

    assert journal_of(journaled).flush() == 1
    assert count_rows(journaled, Response) == 1
    answers = stored_answers(journaled)
    assert answers["overall"] == (4.0, None, None)
    assert answers["courtesy"] == (5.0, None, None)
    assert answers["waiting_time"] == (None, "na", None)
    assert "jean@example.org" not in answers["comment"][2]
    assert journal_files(journaled) == []  # written, then removed


def nothing_refused(app, caplog) -> bool:
    """No line set aside, no error logged."""
    refused = journal_of(app).directory / "refused"
    return not refused.exists() and not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_double_tap_is_journaled_twice_and_stored_once(journaled, caplog):
    client = journaled.test_client()
    _, tokens = open_form(client)
    data = {"overall": "5", **tokens}
    assert [client.post("/s/piscine", data=data).status_code for _ in range(2)] == [200, 200]
    (file,) = journal_files(journaled)
    assert len(file.read_text(encoding="utf-8").splitlines()) == 2
    assert journal_of(journaled).flush() == 1
    assert count_rows(journaled, Response) == 1
    assert nothing_refused(journaled, caplog)  # the second line skipped by its token, not refused
    # Sent once more after the flush: known by its token, nothing added.
    assert client.post("/s/piscine", data=data).status_code == 200
    assert journal_of(journaled).flush() == 0
    assert count_rows(journaled, Response) == 1


def test_a_large_flush_gives_each_response_its_own_answers(journaled, caplog):
    """Many responses share each statement of a flush: each keeps its own answers, a
    token stored before is skipped, a repeated one stored once."""
    subs = [
        valid_submission(journaled, "piscine", f"batch-{i:03}", {"overall": str(1 + i % 5), "comment": f"réponse {i}"})
        for i in range(150)
    ]
    with journaled.app_context():
        storage.store_response(subs[70])
    for sub in [*subs, subs[3]]:
        journal_of(journaled).append(storage.journal_record(sub))
    assert journal_of(journaled).flush() == 149
    with journaled.app_context():
        rows = db.session.execute(
            select(Response.token, Answer.question_key, Answer.value, Answer.text).join(Answer)
        ).all()
    assert len(rows) == 2 * 150
    by_token: dict[str, dict] = {}
    for token, key, value, text in rows:
        by_token.setdefault(token, {})[key] = value if key == "overall" else text
    assert by_token == {f"batch-{i:03}": {"overall": 1 + i % 5, "comment": f"réponse {i}"} for i in range(150)}
    assert nothing_refused(journaled, caplog)


def test_the_journal_of_a_killed_worker_is_stored_by_the_next_flush(journaled):
    submission = valid_submission(journaled, "piscine", "taken-by-a-killed-worker")
    directory = journal_of(journaled).directory
    pid = os.fork()
    if pid == 0:  # a worker: it journals one response and is killed before any flush
        try:
            Journal(directory, lambda records: (0, []), NEVER).append(storage.journal_record(submission))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert len(journal_files(journaled)) == 1 and count_rows(journaled, Response) == 0

    assert journal_of(journaled).flush() == 0  # its own journal only
    assert journal_of(journaled).flush(recover=True) == 1
    assert count_rows(journaled, Response) == 1
    assert journal_files(journaled) == []


def test_a_journal_its_process_still_holds_is_left_to_it(journaled):
    other = another_journal(journaled)
    other.append(storage.journal_record(valid_submission(journaled, "piscine", "held-by-a-live-worker")))
    assert journal_of(journaled).flush(recover=True) == 0
    assert len(journal_files(journaled)) == 1
    assert other.flush() == 1
    assert count_rows(journaled, Response) == 1 and journal_files(journaled) == []


def test_lines_stored_before_their_process_died_are_skipped_and_the_rest_stored(journaled, caplog):
    first = valid_submission(journaled, "piscine", "stored-before-the-crash")
    second = valid_submission(journaled, "piscine", "not-stored-yet", {"overall": "2"})
    with journaled.app_context():
        storage.store_response(first)
    write_orphan(journaled, "1-died.jsonl", [line_of(first), line_of(second)])
    assert journal_of(journaled).flush(recover=True) == 1
    with journaled.app_context():
        tokens = db.session.execute(select(Response.token).order_by(Response.token)).scalars().all()
    assert tokens == ["not-stored-yet", "stored-before-the-crash"]
    assert count_rows(journaled, Answer) == 3  # 2 of the first, 1 of the second: none twice
    assert nothing_refused(journaled, caplog)


def test_a_line_the_database_refuses_or_that_is_cut_short_is_kept_aside_and_logged(journaled, caplog):
    good = valid_submission(journaled, "piscine", "a-good-response")
    orphan = valid_submission(journaled, "piscine", "of-an-unknown-version", version_id=10**9)
    cut_short = line_of(valid_submission(journaled, "piscine", "cut-short"))[:40]
    unbindable = json.loads(line_of(valid_submission(journaled, "piscine", "unbindable")))
    unbindable["response"]["service_id"] = {"not": "a number"}
    too_large = json.loads(line_of(valid_submission(journaled, "piscine", "too-large")))
    too_large["response"]["service_id"] = 2**70
    not_a_response = {"answers": []}
    lines = [line_of(orphan), line_of(good), cut_short, json.dumps(unbindable), json.dumps(too_large)]
    lines.append(json.dumps(not_a_response))
    write_orphan(journaled, "2-died.jsonl", lines)

    assert journal_of(journaled).flush(recover=True) == 1
    with journaled.app_context():
        assert db.session.execute(select(Response.token)).scalars().all() == ["a-good-response"]
    kept = [json.loads(line) for line in (journal_of(journaled).directory / "refused" / "2-died.jsonl").open()]
    expected = [cut_short, not_a_response, json.loads(line_of(orphan)), unbindable, too_large]
    assert [k["record"] for k in kept] == expected
    assert "unreadable" in kept[0]["reason"] and "malformed" in kept[1]["reason"]
    assert "FOREIGN KEY" in kept[2]["reason"].upper()
    assert sum("not stored" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") == 5
    assert journal_files(journaled) == []
    assert journal_of(journaled).flush(recover=True) == 0  # set aside once, not tried again


def test_a_failed_write_keeps_the_lines_for_the_next_flush(journaled, monkeypatch):
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "3", **tokens}).status_code == 200
    journal = journal_of(journaled)
    real = journal.write

    def database_away(records):
        raise ConnectionError("database away")

    monkeypatch.setattr(journal, "write", database_away)
    with pytest.raises(ConnectionError):
        journal.flush()
    assert count_rows(journaled, Response) == 0 and len(journal_files(journaled)) == 1
    # The file, not the memory, is what the next flush writes.
    (file,) = journal_files(journaled)
    with file.open("a", encoding="utf-8") as out:
        out.write(line_of(valid_submission(journaled, "piscine", "only-in-the-file")) + "\n")
    # Meanwhile another resident answers: the kept file first, then the current one.
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "5", **tokens}).status_code == 200
    monkeypatch.setattr(journal, "write", real)
    assert journal.flush() == 3
    assert count_rows(journaled, Response) == 3 and journal_files(journaled) == []


def test_an_error_of_the_whole_database_leaves_the_lines_waiting_not_refused(journaled, monkeypatch, caplog):
    """A damaged or read-only database refuses every write: the lines wait, none is set aside."""
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "3", **tokens}).status_code == 200
    with journaled.app_context():
        dbapi = db.engine.dialect.loaded_dbapi
    real = storage._insert_new

    def damaged(*args):
        raise dbapi.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(storage, "_insert_new", damaged)
    with pytest.raises(dbapi.DatabaseError):
        journal_of(journaled).flush()
    assert len(journal_files(journaled)) == 1 and not (journal_of(journaled).directory / "refused").exists()
    monkeypatch.setattr(storage, "_insert_new", real)
    assert journal_of(journaled).flush() == 1
    assert count_rows(journaled, Response) == 1
    assert nothing_refused(journaled, caplog)


def test_a_stopping_process_writes_its_current_file_even_while_an_older_one_fails(journaled, monkeypatch):
    client = journaled.test_client()
    journal = journal_of(journaled)
    real = journal.write

    def refuses_the_first(records):
        if any(r["response"]["token"] == first for r in records):
            raise ConnectionError("this file's database write fails")
        return real(records)

    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "1", **tokens}).status_code == 200
    (first_file,) = journal_files(journaled)
    first = json.loads(first_file.read_text(encoding="utf-8"))["response"]["token"]
    monkeypatch.setattr(journal, "write", refuses_the_first)
    with pytest.raises(ConnectionError):
        journal.flush()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "2", **tokens}).status_code == 200
    with pytest.raises(ConnectionError):
        journal.flush()  # the older file still fails: the current one waits (one file more, no new one)
    assert count_rows(journaled, Response) == 0 and len(journal_files(journaled)) == 2
    journal.close()  # stopping: the current file is written all the same
    assert count_rows(journaled, Response) == 1
    assert journal_files(journaled) == [first_file]  # kept for a later flush, or the next process


def test_while_a_file_waits_for_the_database_the_process_keeps_to_one_more(journaled, monkeypatch):
    client = journaled.test_client()
    journal = journal_of(journaled)
    monkeypatch.setattr(journal, "write", lambda records: 1 / 0)
    for _ in range(3):
        _, tokens = open_form(client)
        assert client.post("/s/piscine", data={"overall": "3", **tokens}).status_code == 200
        with pytest.raises(ZeroDivisionError):
            journal.flush()
    assert len(journal_files(journaled)) == 2  # the one that failed, and the current one


def test_a_line_written_but_not_counted_is_read_from_the_file(journaled):
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    # A signal stopping the process between the write and its count leaves a line the
    # process's memory lacks; the file's size tells.
    (file,) = journal_files(journaled)
    with file.open("a", encoding="utf-8") as out:
        out.write(line_of(valid_submission(journaled, "piscine", "written-not-counted")) + "\n")
    assert journal_of(journaled).flush() == 2


def test_a_response_that_cannot_be_journaled_is_stored_in_its_request(journaled, monkeypatch):
    def disk_full(record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_of(journaled), "append", disk_full)
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    assert count_rows(journaled, Response) == 1


def test_a_child_process_leaves_the_parents_journal_to_it(journaled):
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    journal = journal_of(journaled)
    pid = os.fork()
    if pid == 0:  # a child (a command the app would start): it holds no journal of its own
        try:
            journal.write = lambda records: (len(records), [])
            stored = journal.flush()
        finally:
            os._exit(10 + stored)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 10
    assert len(journal_files(journaled)) == 1  # still the parent's, and locked by it
    assert journal.flush() == 1 and count_rows(journaled, Response) == 1


def test_a_worker_that_stops_writes_its_journal_before_it_ends(journaled, database_url, tmp_path):
    """A real process, ended as gunicorn ends a worker (sys.exit): nothing left behind."""
    script = f"""
import sys
from barometer import create_app
from barometer.config import TestConfig
from tests.helpers import open_form
config = {{key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}}
config.update(SQLALCHEMY_DATABASE_URI={database_url!r}, RESPONSE_FLUSH_SECONDS={NEVER},
              RESPONSE_JOURNAL_DIR={str(journal_of(journaled).directory)!r})
client = create_app(config).test_client()
_, tokens = open_form(client)
assert client.post("/s/piscine", data={{"overall": "2", **tokens}}).status_code == 200
sys.exit(0)
"""
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=120)
    assert count_rows(journaled, Response) == 1 and journal_files(journaled) == []


def test_closing_writes_what_is_left(journaled):
    client = journaled.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    journal_of(journaled).close()  # as a worker does when it stops
    assert count_rows(journaled, Response) == 1 and journal_files(journaled) == []


def test_the_thread_writes_the_journal_every_few_moments(app_factory, tmp_path):
    from barometer.loader import load_surveys
    from surveys.schema import DEFAULT_ROOT

    app = app_factory(RESPONSE_FLUSH_SECONDS=0.05, RESPONSE_JOURNAL_DIR=str(tmp_path / "pending"))
    with app.app_context():
        load_surveys(DEFAULT_ROOT)
    try:
        client = app.test_client()
        _, tokens = open_form(client)
        assert client.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
        deadline = time.monotonic() + 10
        while count_rows(app, Response) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_rows(app, Response) == 1
    finally:
        app.extensions["response_journal"].close()


def test_where_the_journal_is_kept(tmp_path):
    def journal(url: str, **settings):
        config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
        config.update({"SQLALCHEMY_DATABASE_URI": url, "RESPONSE_FLUSH_SECONDS": 0.2, **settings})
        return create_app(config).extensions["response_journal"]

    database = tmp_path / "barometre.sqlite3"
    assert journal(f"sqlite:///{database}").directory == tmp_path / "barometre.sqlite3-pending"
    assert journal(f"sqlite:///{database}", RESPONSE_JOURNAL_DIR=str(tmp_path / "j")).directory == tmp_path / "j"
    assert journal(f"sqlite:///{database}", RESPONSE_FLUSH_SECONDS=0) is None  # each response in its request
    assert journal("sqlite://") is None  # a database in memory: nothing to journal beside
    server = "postgresql+psycopg://user@db.invalid/barometre"  # a server is never connected to here
    assert journal(server) is None
    assert journal(server, RESPONSE_JOURNAL_DIR=str(tmp_path / "k")).directory == tmp_path / "k"


def _get(url: str, data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    headers = {"Origin": url.split("/s/")[0]} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_for(log: Path, pattern: str, after: int = 0) -> re.Match:
    """The first match of `pattern` in gunicorn's log (from offset `after`), waited for."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(encoding="utf-8", errors="replace")[after:])
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gunicorn never logged {pattern!r}: {log.read_text(errors='replace')[-2000:]}")


def test_a_worker_killed_after_its_thank_you_page_loses_nothing(journaled, database_url, tmp_path):
    """gunicorn as in production: a worker killed (SIGKILL) after answering keeps its response."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "a-key-for-this-test",
        "RESPONSE_JOURNAL_DIR": str(journal_of(journaled).directory),
        "RESPONSE_FLUSH_SECONDS": str(NEVER),  # nothing written before the kill
    }
    log = tmp_path / "gunicorn.log"
    root = Path(__file__).resolve().parents[2]
    with log.open("w") as out:  # port 0: the system gives a free one, which gunicorn logs
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:0", "wsgi:app"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        port = _wait_for(log, r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        url = f"http://127.0.0.1:{port}/s/piscine"
        booted = _wait_for(log, r"Booting worker with pid: (\d+)")

        def answer(overall: str) -> int:
            status, page = _get(url)
            assert status == 200
            token = re.search(r'name="token" value="([^"]*)"', page).group(1)
            return _get(url, {"overall": overall, "token": token})[0]

        assert answer("5") == 200
        os.kill(int(booted.group(1)), signal.SIGKILL)
        _wait_for(log, r"Booting worker with pid: (\d+)", after=booted.end())  # gunicorn starts another
        assert answer("1") == 200
        assert count_rows(journaled, Response) == 0  # both in journals, none written yet
    finally:
        server.terminate()  # the last worker writes its journal, and the dead one's
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
    with journaled.app_context():
        values = db.session.execute(select(Answer.value).where(Answer.question_key == "overall")).scalars().all()
    assert sorted(values) == [1.0, 5.0]
    assert journal_files(journaled) == []


def refused_lines(app) -> list[dict]:
    folder = journal_of(app).directory / "refused"
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_responses_set_aside_are_stored_once_their_cause_is_fixed(journaled):
    """`flask barometer retry-refused`: stored now, stored already, or still set aside."""
    runner = journaled.test_cli_runner()
    assert runner.invoke(args=["barometer", "retry-refused"]).output == "Aucune réponse mise de côté.\n"
    later = valid_submission(journaled, "piscine", "accepted-later")
    known = valid_submission(journaled, "piscine", "stored-meanwhile")
    with journaled.app_context():
        storage.store_response(known)
    still = storage.journal_record(valid_submission(journaled, "piscine", "still-refused"))
    still["response"] = {**still["response"], "service_id": 999_999}  # no such service
    folder = journal_of(journaled).directory / "refused"
    folder.mkdir()
    (folder / "1-dead.jsonl").write_text(
        "".join(
            json.dumps({"record": record, "reason": "earlier"}) + "\n"
            for record in (storage.journal_record(later), storage.journal_record(known), still, '{"response": {"to')
        ),
        encoding="utf-8",
    )
    result = runner.invoke(args=["barometer", "retry-refused"])
    assert result.exit_code == 1
    assert "1 réponse(s) enregistrée(s), 1 déjà en base, 2 toujours de côté." in result.output
    assert "les raisons sont dans" in result.output
    with journaled.app_context():
        tokens = set(db.session.execute(select(Response.token)).scalars())
    assert tokens == {"accepted-later", "stored-meanwhile"}
    assert count_rows(journaled, Answer) == 4
    lines = refused_lines(journaled)
    assert [line["reason"] == "earlier" for line in lines] == [True, False]  # the unreadable one, then the new reason
    assert lines[1]["record"]["response"]["token"] == "still-refused" and "FOREIGN KEY" in lines[1]["reason"].upper()
    assert sorted(p.name for p in folder.iterdir()) == ["1-dead.jsonl"]
    # Run again: nothing more stored, nothing lost.
    again = runner.invoke(args=["barometer", "retry-refused"])
    assert "0 réponse(s) enregistrée(s), 0 déjà en base, 2 toujours de côté." in again.output
    assert len(refused_lines(journaled)) == 2


def test_a_retry_while_the_database_is_away_leaves_the_responses_set_aside(journaled, monkeypatch):
    folder = journal_of(journaled).directory / "refused"
    folder.mkdir()
    line = json.dumps({"record": storage.journal_record(valid_submission(journaled, "piscine", "t")), "reason": "x"})
    (folder / "2-dead.jsonl").write_text(line + "\n", encoding="utf-8")

    def away(*args, **kwargs):
        raise storage.db.engine.dialect.loaded_dbapi.OperationalError("database is locked")

    with journaled.app_context():
        monkeypatch.setattr(storage, "_insert_new", away)
    result = journaled.test_cli_runner().invoke(args=["barometer", "retry-refused"])
    assert result.exit_code == 1
    assert "rien n'a été repris, les réponses restent de côté" in result.output
    assert [p.name for p in folder.iterdir()] == ["2-dead.jsonl"]
    assert (folder / "2-dead.jsonl").read_text(encoding="utf-8") == line + "\n"
    assert count_rows(journaled) == 0
