"""Load: 200 residents at once against `make serve`'s shape (nginx, gunicorn with
deploy/gunicorn.conf.py) on the test database, with Redis as the limiter's storage.

Run by `make load` (and .ci/run, on PostgreSQL), never by `make test`. Each resident
opens the survey, answers it, and sends it; one send in five is a double tap (the same
form sent twice at once on two connections). Midway, a gunicorn worker is killed with
SIGKILL, twice. A resident whose request the killed worker held gets a 502 from nginx and
taps again, as a person would: the same form, the same token.

Every resident comes from 127.0.0.1, so SURVEY_RATE_LIMIT is raised out of reach here;
the limit is still counted, in Redis, on every submission.

Checked: no answer but the thank-you page and the survey, except one 502 at most per
killed worker (a sync worker holds one request); every response acknowledged with a
thank-you page is stored, nothing else is, none twice, each with all its answers.
Figures printed: requests, requests a second, latencies, stored and acknowledged.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from barometer.extensions import db
from barometer.models import Answer, Response
from barometer.respond.services import token_of

from ..helpers import VALID
from .serving import Served, redis_up, require, require_nginx

pytestmark = pytest.mark.load

RESIDENTS = int(os.environ.get("LOAD_RESIDENTS", "200"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "30"))
DOUBLE_TAPS = 0.2
KILLS = 2
SURVEY = "/s/piscine"
REDIS_URL = "redis://127.0.0.1:6379/14"
THANKS = re.compile(rb'<p class="done" role="status">')
TOKEN = re.compile(rb'name="token" value="([^"]*)"')


@dataclass
class Tally:
    """What the residents saw, shared by their threads (list appends are atomic)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"GET": [], "POST": []})
    acknowledged: set[str] = field(default_factory=set)  # form tokens answered by a thank-you
    sent: set[str] = field(default_factory=set)
    server_errors: list[tuple[str, int]] = field(default_factory=list)
    unexpected: list[tuple[str, int, bytes]] = field(default_factory=list)
    double_taps: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


#: The status given to a reply cut short (no HTTP status was read in full).
CUT = 599


class Resident:
    """One phone: two keep-alive connections (the second for double taps)."""

    RETRIES = 5

    def __init__(self, port: int, tally: Tally, seed: int):
        self.port, self.tally, self.rng = port, tally, random.Random(seed)
        self.conns = [self._connect(), self._connect()]
        self.headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"http://127.0.0.1:{port}",
            "Sec-Fetch-Site": "same-origin",
            "Accept-Language": "fr-FR,fr;q=0.9",
        }

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def _send(self, i: int, method: str, body: str | None = None) -> None:
        try:
            self.conns[i].request(method, SURVEY, body, self.headers if body else {})
        except OSError:  # a keep-alive connection nginx closed: a new one
            self.conns[i].close()
            self.conns[i] = self._connect()
            self.conns[i].request(method, SURVEY, body, self.headers if body else {})

    def _receive(self, i: int, method: str, started: float) -> tuple[int, bytes]:
        try:
            response = self.conns[i].getresponse()
            page = response.read()
        except (http.client.HTTPException, OSError):
            # A worker killed while its reply went out: nginx had passed the headers
            # on, then closed. Counted as that worker's 5xx, and tapped again.
            self.conns[i].close()
            self.conns[i] = self._connect()
            self.tally.server_errors.append((method, CUT))
            return CUT, b""
        self.tally.latencies[method].append(time.perf_counter() - started)
        if response.status >= 500:
            self.tally.server_errors.append((method, response.status))
        return response.status, page

    def request(self, method: str, body: str | None = None) -> tuple[int, bytes]:
        """One request on the first connection; a 5xx (a killed worker) is tapped again."""
        for attempt in range(self.RETRIES):
            started = time.perf_counter()
            self._send(0, method, body)
            status, page = self._receive(0, method, started)
            if status < 500:
                break
            time.sleep(0.2 * (attempt + 1))
        return status, page

    def request_twice_at_once(self, body: str) -> list[tuple[int, bytes]]:
        """The same submission sent on both connections before either is answered."""
        started = time.perf_counter()
        self._send(0, "POST", body)
        self._send(1, "POST", body)
        answers = [self._receive(i, "POST", started) for i in (0, 1)]
        # A 5xx (a killed worker) is tapped again, alone.
        return [answer if answer[0] < 500 else self.request("POST", body) for answer in answers]

    def live(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            status, page = self.request("GET")
            if status != 200 or not TOKEN.search(page):
                self.tally.unexpected.append(("GET", status, page[:300]))
                continue
            token = TOKEN.search(page).group(1).decode()
            body = urlencode({**VALID, "token": token}, doseq=True)
            self.tally.sent.add(token)
            if self.rng.random() < DOUBLE_TAPS:
                with self.tally.lock:
                    self.tally.double_taps += 1
                answers = self.request_twice_at_once(body)
            else:
                answers = [self.request("POST", body)]
            for status, page in answers:
                if status == 200 and THANKS.search(page):
                    self.tally.acknowledged.add(token)
                else:
                    self.tally.unexpected.append(("POST", status, page[:300]))
        for conn in self.conns:
            conn.close()


def kill_workers(served: Served, deadline: float, killed: list[int]) -> None:
    """SIGKILL a busy gunicorn worker at a third and two thirds of the run."""
    start = time.monotonic()
    for k in range(1, KILLS + 1):
        time.sleep(max(0.0, start + k * (deadline - start) / (KILLS + 1) - time.monotonic()))
        pid = random.Random(k).choice(served.gunicorn_workers())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def stored(app) -> tuple[list[str], set[int]]:
    """The tokens of the stored responses, and how many answers each response has."""
    with app.app_context():
        tokens = list(db.session.scalars(select(Response.token)))
        per_response = select(func.count()).select_from(Answer).group_by(Answer.response_id)
        counts = set(db.session.scalars(per_response))
    return tokens, counts


def test_200_residents_and_a_killed_worker_lose_nothing_acknowledged(surveys, _schema, tmp_path):
    require_nginx()
    require(redis_up(), "no Redis on 127.0.0.1:6379 for the limiter", "REDIS")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    app = surveys
    served = Served(tmp_path, _schema, RATELIMIT_STORAGE_URI=REDIS_URL, SURVEY_RATE_LIMIT="1000000 per minute")
    tally, killed = Tally(), []
    try:
        workers = len(served.gunicorn_workers())
        residents = [Resident(served.port, tally, seed) for seed in range(RESIDENTS)]
        started = time.monotonic()
        deadline = started + SECONDS
        threads = [threading.Thread(target=r.live, args=(deadline,)) for r in residents]
        threads.append(threading.Thread(target=kill_workers, args=(served, deadline, killed)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        assert served.stop() == 0, served.output()
    redis_keys = redis.Redis.from_url(REDIS_URL).dbsize()

    tokens, answer_counts = stored(app)
    with app.app_context():
        acknowledged = {token_of(form).response for form in tally.acknowledged}
        sent = {token_of(form).response for form in tally.sent}
    get, post = tally.latencies["GET"], tally.latencies["POST"]
    every = get + post
    database = make_url(_schema).get_backend_name()
    print(
        f"\n== load: {RESIDENTS} residents, {elapsed:.1f} s, {database}, nginx + gunicorn ({workers} workers),"
        f" limiter in Redis\n"
        f"requests {len(every)} ({len(get)} GET, {len(post)} POST), {len(every) / elapsed:.0f} req/s\n"
        f"latency ms: all p50 {1000 * percentile(every, 50):.0f} p99 {1000 * percentile(every, 99):.0f};"
        f" GET p50 {1000 * percentile(get, 50):.0f} p99 {1000 * percentile(get, 99):.0f};"
        f" POST p50 {1000 * percentile(post, 50):.0f} p99 {1000 * percentile(post, 99):.0f}\n"
        f"forms sent {len(sent)}, double taps {tally.double_taps}, acknowledged {len(acknowledged)},"
        f" stored {len(tokens)} (distinct {len(set(tokens))}), answers per response {sorted(answer_counts)}\n"
        f"workers killed {len(killed)}, 5xx {tally.server_errors} (each tapped again)"
    )
    assert tally.unexpected == []
    assert len(killed) == KILLS and len(tally.server_errors) <= len(killed), tally.server_errors
    assert redis_keys > 0  # the limit was counted in Redis
    assert acknowledged == sent, "every resident got a thank-you page in the end"
    assert len(tokens) == len(set(tokens)), "a response stored twice"
    assert set(tokens) == acknowledged, "stored must be exactly what was acknowledged"
    assert len(answer_counts) == 1, "every response has all its answers, none twice"
