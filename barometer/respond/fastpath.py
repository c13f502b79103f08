"""A good survey submission, answered before Flask's request machinery.

The submission is the product's busiest request, and the one a resident waits for at
the counter. Measured on two cores (bench/README.md), Flask's part of it (request and
application contexts, routing, hooks, the response object) cost as much as the
submission's own work: judging the answers, checking the signed token, counting the
address, journaling the response. This WSGI middleware, in front of Flask, takes a
survey POST that is plainly good and answers it with the blueprint's own functions
and the thank-you page the blueprint rendered, the same bytes and headers (the tests
compare both). Everything else goes on to Flask, with the body as it was sent:

- any request but a POST to `/s/<service>` or `/s/<service>/<site>`;
- a request with a cookie (a signed-in member of staff: Flask keeps the session);
- a request without `Sec-Fetch-Site: same-origin` or `none` (an older browser: the
  view checks its `Origin`), or not urlencoded, or chunked, or empty, or larger than
  `MAX_CONTENT_LENGTH`;
- a survey that this worker has not cached (or not fresh), that is closed, or whose
  thank-you page in the resident's language it has not rendered yet;
- any answer, token or honeypot that `judge_submission` does not find good: the view
  judges it again and shows what to correct.

A good submission is counted against the address's limits here, then kept. When a
limit is spent, the request still goes on to the view, marked as counted
(`services.COUNTED`), and the view shows the limit's page without counting it twice.
When keeping fails (the database refusing every write), it goes on marked as not kept
(`services.NOT_KEPT`), and the view shows the error page without trying again.
"""

from __future__ import annotations

import io
import logging

from werkzeug.wsgi import get_content_length

from .. import SECURITY_HEADERS, interface_language
from ..storage import keep_response
from .services import (
    COUNTED,
    NOT_KEPT,
    OWN_FETCH_SITES,
    cached_survey,
    form_of_body,
    is_urlencoded,
    judge_submission,
    spend_submission,
)
from .views import HTML, NO_STORE, thanks_page

log = logging.getLogger(__name__)


class SubmissionFastPath:
    """WSGI middleware: good survey submissions answered here, the rest by `wsgi_app`."""

    def __init__(self, app, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        page = None
        if environ.get("REQUEST_METHOD") == "POST":
            try:
                page = self._take(environ)
            except Exception:  # handed on: the view tries once more, or shows its error page
                log.exception("submission handed on to the view")
        if page is None:
            return self.wsgi_app(environ, start_response)
        start_response(
            "200 OK", [*NO_STORE, ("Content-Type", HTML), ("Content-Length", str(len(page))), *SECURITY_HEADERS]
        )
        return [page]

    def _take(self, environ) -> bytes | None:
        """The thank-you page of a good submission, kept; None to leave it to Flask."""
        path = environ.get("PATH_INFO", "")
        parts = path.split("/")
        if not (3 <= len(parts) <= 4 and parts[:2] == ["", "s"] and all(parts[2:]) and path.isascii()):
            return None
        if "HTTP_COOKIE" in environ or environ.get("HTTP_SEC_FETCH_SITE") not in OWN_FETCH_SITES:
            return None
        # A chunked body has no length to trust (Werkzeug reads it to its end).
        length, largest = get_content_length(environ), self.app.config["MAX_CONTENT_LENGTH"]
        if not is_urlencoded(environ) or not length or (largest is not None and length > largest):
            return None
        with self.app.app_context():
            context = cached_survey(parts[2], parts[3] if len(parts) == 4 else None)
            if context is None or not context.is_open:
                return None
            page = thanks_page(context, interface_language(environ))
            if page is None:
                return None
            # From here Flask reads the body from the fast path, should it be handed on
            # (an empty one if the client went away while it was read).
            stream, environ["wsgi.input"] = environ["wsgi.input"], io.BytesIO()
            body = stream.read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            if len(body) != length:
                return None
            submission = judge_submission(context, form_of_body(body)).submission
            if submission is None:
                return None
            address = environ.get("REMOTE_ADDR") or "127.0.0.1"  # Flask-Limiter's own key
            retry_after = environ[COUNTED] = spend_submission(address)
            if retry_after is not None:
                return None
            try:
                keep_response(submission)
            except Exception:
                # Kept neither in the journal nor in the database: the view shows its
                # error page rather than wait on a failing database a second time.
                environ[NOT_KEPT] = True
                raise
            return page
