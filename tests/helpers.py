"""Small helpers for tests that drive the survey through HTTP."""

import re

from sqlalchemy import func, select

from barometer.extensions import db
from barometer.models import Response


def form_tokens(html: str) -> dict[str, str]:
    """The hidden CSRF and one-time tokens of a rendered survey page."""
    return {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "token")}


def errors(html: str) -> list[str]:
    """The error messages shown next to fields."""
    return re.findall(r'<p class="error" id="[^"]+">([^<]+)</p>', html)


def count_rows(app, model=Response) -> int:
    """How many rows the table of `model` holds."""
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()
