"""The baselines of the HTTP benchmark, under the same gunicorn as the app.

`/` is a bare Flask "hello". `/insert` is the floor of any submission: a bare Flask
view that writes the request body as one row into SQLite (WAL) and commits, with no
ORM, form, CSRF, session or rate limiter. `/insert-response` is the floor of this
app's submission: a bare Flask view that writes the rows of one response (the response
and its answers, as the app's storage builds them) into a copy of the app's database,
with its schema, indexes and foreign keys, in one transaction, taking turns with the
other process on a lock file as the app's storage does, and checks nothing.
"""

import fcntl
import json
import os
import secrets
import sqlite3
import threading

from flask import Flask, request

app = Flask(__name__)
_local = threading.local()


@app.route("/")
def hello():
    return "hello"


def _connection() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        # The benchmark creates the file (WAL, table) before the workers start.
        conn = _local.conn = sqlite3.connect(os.environ["BENCH_FLOOR_DB"], timeout=10)
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def create_floor_database(path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, token TEXT UNIQUE, body TEXT)")


@app.post("/insert")
def insert():
    conn = _connection()
    conn.execute(
        "INSERT INTO floor (token, body) VALUES (?, ?)", (secrets.token_hex(8), request.get_data(as_text=True))
    )
    conn.commit()
    return "ok"


def _response_connection() -> tuple[sqlite3.Connection, object]:
    """The connection to a copy of the app's database (prepared by the benchmark,
    settings as the app's) and the file on which writers take turns, as the app's do."""
    conn = getattr(_local, "rows", None)
    if conn is None:
        path = os.environ["BENCH_ROWS_DB"]
        conn = _local.rows = sqlite3.connect(path, timeout=10)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _local.turn = open(f"{path}-writer", "a")  # noqa: SIM115  (kept open)
    return conn, _local.turn


_ROWS: dict = {}


def _rows() -> dict:
    """The statements and parameters of the benchmark's response, as the app builds them."""
    if not _ROWS:
        _ROWS.update(json.loads(os.environ["BENCH_ROWS"]))
    return _ROWS


@app.post("/insert-response")
def insert_response():
    rows, (conn, turn) = _rows(), _response_connection()
    request.get_data()
    response = list(rows["response"])
    response[rows["token_slot"]] = secrets.token_urlsafe(16)
    answers = [list(a) for a in rows["answers"]]
    fcntl.flock(turn, fcntl.LOCK_EX)
    try:
        cursor = conn.cursor()
        cursor.execute(rows["response_sql"], response)
        response_id = cursor.fetchone()[0]
        for a in answers:
            a[rows["response_id_slot"]] = response_id
        cursor.executemany(rows["answer_sql"], answers)
        conn.commit()
        cursor.close()
    except BaseException:
        conn.rollback()  # the write lock is not kept by a failed transaction
        raise
    finally:
        fcntl.flock(turn, fcntl.LOCK_UN)
    return "ok"
