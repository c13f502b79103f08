"""Small helpers for tests that drive the survey through HTTP."""

import re


def form_tokens(html: str) -> dict[str, str]:
    """The hidden CSRF and one-time tokens of a rendered survey page."""
    return {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "token")}


def errors(html: str) -> list[str]:
    """The error messages shown next to fields."""
    return re.findall(r'<p class="error" id="[^"]+">([^<]+)</p>', html)
