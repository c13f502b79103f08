"""Gunicorn settings of the HTTP benchmark: count the submissions each worker answers.

The benchmark runs without an access log, as production should (README: a log of
addresses and times could tie a response to a person). Instead, each worker counts the
POST requests it answered and how many of them with a 2xx status, and writes both to
`$BENCH_COUNTS_DIR/<pid>` when it stops; the benchmark adds them up to check that every
stored response was acknowledged once. Both servers of the benchmark load this file.
"""

import os
from pathlib import Path

_counts = {"posts": 0, "ok": 0}


def post_request(worker, req, environ, resp):
    if req.method == "POST":
        _counts["posts"] += 1
        if resp.status_code is not None and 200 <= resp.status_code < 300:
            _counts["ok"] += 1


def worker_exit(server, worker):
    folder = os.environ.get("BENCH_COUNTS_DIR")
    if folder:
        Path(folder, str(worker.pid)).write_text(f"{_counts['posts']} {_counts['ok']}\n")
