"""The baselines of the HTTP benchmark, under the same gunicorn as the app.

`/` is a bare Flask "hello". `/form` receives the survey's form (the same body) and
only parses it: what taking any form costs. `/insert` is the floor of any submission: a bare Flask
view that writes the request body as one row into SQLite (WAL) and commits, with no
ORM, form, CSRF, session or rate limiter. `/insert-response` is the floor of this
app's submission: a bare Flask view that writes the rows of one response (the response
and its answers, as the app's storage builds them) into a copy of the app's database,
with its schema, indexes and foreign keys: the app's own write code (its turn on the lock
file, one transaction) on a plain connection, and nothing else: no form, check, session,
limiter, pool or ORM.
"""

import json
import os
import secrets
import sqlite3
import threading

from flask import Flask, request
from sqlalchemy import Engine, create_engine

from barometer.storage import _driver_inserts, _insert, _write_turn

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


@app.post("/form")
def read_form():
    """Receiving the survey's form: its body parsed by Werkzeug, nothing else."""
    request.form.get("overall")
    return "ok"


@app.post("/insert")
def insert():
    conn = _connection()
    conn.execute(
        "INSERT INTO floor (token, body) VALUES (?, ?)", (secrets.token_hex(8), request.get_data(as_text=True))
    )
    conn.commit()
    return "ok"


def _response_writer() -> tuple[sqlite3.Connection, Engine]:
    """A connection to a copy of the app's database (prepared by the benchmark, settings
    as the app's), and an engine that names that file and its dialect to the app's write
    code (it never connects)."""
    conn = getattr(_local, "rows", None)
    if conn is None:
        path = os.environ["BENCH_ROWS_DB"]
        conn = _local.rows = sqlite3.connect(path, timeout=10)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _local.engine = create_engine(f"sqlite:///{path}")
    return conn, _local.engine


_ROWS: dict = {}


def _rows() -> dict:
    """The parameters of the benchmark's response and its answers, as the app builds them."""
    if not _ROWS:
        _ROWS.update(json.loads(os.environ["BENCH_ROWS"]))
    return _ROWS


@app.post("/insert-response")
def insert_response():
    rows, (conn, engine) = _rows(), _response_writer()
    request.get_data()
    insert, _ = _driver_inserts(engine.dialect)
    response = list(rows["response"])
    insert.put(response, "token", secrets.token_urlsafe(16))
    answers = [list(a) for a in rows["answers"]]
    # The app's own write: its turn on the lock file, then one transaction.
    with _write_turn(engine):
        try:
            _insert(conn, engine.dialect, response, answers)
        except BaseException:
            conn.rollback()  # the write lock is not kept by a failed transaction
            raise
    return "ok"
