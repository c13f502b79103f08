"""Gunicorn's settings for `make serve` (deploy/serve.py gives the socket): sync workers
behind nginx.

nginx reads each request whole before passing it on and takes each page whole before
sending it, so a worker only ever talks to nginx over a local socket and is never held
by a slow phone: sync workers, one request at a time, are gunicorn's advice there.
"""

import os

wsgi_app = "wsgi:app"
proc_name = "barometre"
#: WORKERS, or gunicorn's rule of thumb: two per core this process may use, plus one.
workers = int(os.environ.get("WORKERS") or 2 * len(os.sched_getaffinity(0)) + 1)
worker_class = "sync"
#: A worker silent this long (seconds) is killed and replaced. Longer than the database's
#: statement and lock timeouts, which end a blocked request first, with a page.
timeout = 30
#: On a restart (SIGHUP, max_requests, Ctrl-C) a worker has this long to end its request.
graceful_timeout = 30
#: Each worker is replaced, gracefully, after about this many requests, giving back what
#: memory it gathered; the jitter keeps the workers from restarting all at once.
max_requests = 5000
max_requests_jitter = 500
#: No access log: one that keeps the address and time of each submission could tie a
#: response to an address (nginx keeps none either). Errors go to the standard error.
accesslog = None
errorlog = "-"
loglevel = "info"
