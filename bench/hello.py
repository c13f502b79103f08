"""The baselines of the HTTP benchmark, under the same gunicorn as the app.

`/` is a bare Flask "hello". `/insert` is the floor of any submission: a bare Flask
view that writes the request body as one row into SQLite (WAL) and commits, with no
ORM, form, CSRF, session or rate limiter.
"""

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
