"""A good survey submission, answered before Flask's request machinery.

The submission is the product's busiest request, and the one a resident waits for at
the counter. Measured on two cores (bench/README.md), Flask's part of it (request and
application contexts, routing, hooks, the response object) cost as much as the
submission's own work: judging the answers, checking the signed token, counting the
address, journaling the response. This WSGI middleware, in front of Flask, takes a
survey POST that is plainly good and answers it with the blueprint's own functions
and the thank-you page the blueprint rendered, the same bytes and headers (the tests
compare both). Everything else goes on to Flask untouched, the body as it was sent:

- any request but a POST to `/s/<service>` or `/s/<service>/<site>`;
- a request with a cookie (a signed-in member of staff: Flask keeps the session);
- a request without `Sec-Fetch-Site: same-origin` or `none` (an older browser: the
  view checks its `Origin`), or not urlencoded, or larger than `MAX_CONTENT_LENGTH`;
- a survey that this worker has not cached (or not fresh), that is closed, or whose
  thank-you page in the resident's language it has not rendered yet;
- any answer, token or honeypot that `judge_submission` does not find good: the view
  judges it again and shows what to correct.

A good submission is counted against the address's limits here, then kept. When a
limit is spent, or keeping fails, the request still goes on to the view, marked as
counted (`services.COUNTED`): the view says so, or stores the response, without
counting it twice.
"""

from __future__ import annotations

import io
import logging

from .. import SECURITY_HEADERS, interface_language
from ..extensions import limiter
from ..storage import keep_response
from .services import COUNTED, OWN_FETCH_SITES, cached_survey, form_of_body, is_urlencoded, judge_submission
from .services import spend_submission as spend
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
        if not is_urlencoded(environ) or not environ.get("CONTENT_LENGTH", "").isdigit():
            return None
        length, largest = int(environ["CONTENT_LENGTH"]), self.app.config["MAX_CONTENT_LENGTH"]
        if largest is not None and length > largest:
            return None
        with self.app.app_context():
            context = cached_survey(parts[2], parts[3] if len(parts) == 4 else None)
            if context is None or not context.is_open:
                return None
            page = thanks_page(context, interface_language(environ))
            if page is None:
                return None
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)  # for Flask, should it be handed on
            if len(body) != length:
                return None
            submission = judge_submission(context, form_of_body(body)).submission
            if submission is None:
                return None
            address = environ.get("REMOTE_ADDR") or "127.0.0.1"  # Flask-Limiter's own key
            retry_after = environ[COUNTED] = spend(address) if limiter.enabled else None
            if retry_after is not None:
                return None
            keep_response(submission)  # should it fail, the view keeps it, counted already
            return page
