"""A floor of the HTTP benchmark: a submission's own work, without Flask's request machinery.

Not a way to serve the survey: a measure of what Flask costs a submission. A plain WSGI
function, under the same gunicorn as the other cases, takes the benchmark's POST and
does what the app's view does for a good submission, with the app's own functions: the
form parsed as `posted_form` parses it, the survey from the worker's cache, the
submission counted against the rate limit, the origin checked, then `take_submission`
(the honeypot, the signed token, the questionnaire's rules, the response journaled). It
answers the survey's thank-you page, rendered once. What it leaves out is Flask's part
of each request: request and application contexts, routing, hooks (CSRF, session,
sign-in, security headers), Babel and the response object.
"""

from urllib.parse import parse_qsl

from flask import render_template
from werkzeug.datastructures import EnvironHeaders, MultiDict

from barometer import create_app
from barometer.extensions import limiter
from barometer.respond.services import (
    SUBMISSION_SCOPE,
    _parsed_limits,
    get_survey,
    is_cross_site,
    take_submission,
)

flask_app = create_app()
flask_app.app_context().push()  # for the whole worker: the app's functions read its settings
_HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
_pages: dict[str, bytes] = {}


def _thanks(slug: str, context) -> bytes:
    if slug not in _pages:
        with flask_app.test_request_context(f"/s/{slug}"):
            _pages[slug] = render_template("respond/thanks.html", context=context, lang="fr").encode()
    return _pages[slug]


def app(environ, start_response):
    slug = environ["PATH_INFO"].removeprefix("/s/")
    context = get_survey(slug) if environ["REQUEST_METHOD"] == "POST" else None
    if context is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    sent = MultiDict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace"))
    for item in _parsed_limits(flask_app.config["SURVEY_RATE_LIMIT"]):
        limiter.limiter.hit(item, SUBMISSION_SCOPE, environ.get("REMOTE_ADDR", ""))
    origin = f"{environ['wsgi.url_scheme']}://{environ['HTTP_HOST']}"
    cross_site = is_cross_site(EnvironHeaders(environ), lambda: {origin})
    if not take_submission(context, sent, cross_site=cross_site).stored:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"refused"]
    page = _thanks(slug, context)
    start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(page)))])
    return [page]
