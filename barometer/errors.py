"""Error pages, in the visitor's language."""

from flask import render_template


def register_errorhandlers(app) -> None:
    for code in (400, 403, 404, 405, 410, 413, 429, 500):
        app.register_error_handler(code, _render)


def _render(error):
    code = getattr(error, "code", 500) or 500
    return render_template("errors/error.html", code=code), code
