"""Error pages, in the visitor's language."""

import math
import time

from flask import make_response, render_template
from werkzeug.exceptions import SecurityError

from .extensions import limiter


def register_errorhandlers(app) -> None:
    for code in (400, 403, 404, 405, 410, 413, 429, 500):
        app.register_error_handler(code, render_error)


def render_error(error):
    """The error page for an HTTP error, in the visitor's language."""
    code = getattr(error, "code", 500) or 500
    if isinstance(error, SecurityError):
        # A `Host` outside TRUSTED_HOSTS: no URL can be built for it, hence no page.
        return (
            "Requête invalide : cette adresse n'est pas servie ici.",
            400,
            {"Content-Type": "text/plain; charset=utf-8"},
        )
    response = render_template("errors/error.html", code=code), code
    return with_retry_after(response, error) if code == 429 else response


def with_retry_after(response, error):
    """Add `Retry-After` (seconds) to a 429 reply: when the breached limit resets."""
    response = make_response(response)
    seconds = getattr(error, "retry_after", None)
    if seconds is None and (breached := limiter.current_limit) is not None:
        seconds = max(1, math.ceil(breached.window.reset_time - time.time()))
    if seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    return response
