"""The report as a PDF: the page's own HTML and print stylesheet, laid out by WeasyPrint.

Imported by the PDF view on its first call, not with the app: WeasyPrint and its
libraries are heavy. WeasyPrint fetches nothing over the network: its URL fetcher reads
the app's own static files from disk and refuses every other address, so a report can
neither wait on an outside server nor be made to request one.
"""

from __future__ import annotations

import mimetypes
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import Response, current_app, request
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

from ..charts import SVG_NS

# On import, WeasyPrint gives ElementTree's empty prefix (a registry global to the
# process) to its PDF metadata; the charts drawn afterwards would come out as
# <ns0:svg>, which no browser draws. The charts' default namespace is given back.
ET.register_namespace("", SVG_NS)


class StaticFilesFetcher(URLFetcher):
    """Serves ``<base_url><static_url_path>/...`` from the static folder; refuses the rest.

    A refused or missing resource raises ValueError, which WeasyPrint logs before laying
    out the page without it.
    """

    def __init__(self, base_url: str, static_folder: str, static_url_path: str):
        super().__init__()
        base = urlsplit(base_url)
        self._origin = (base.scheme, base.netloc)
        self._prefix = static_url_path.rstrip("/") + "/"
        self._folder = static_folder

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin or not parts.path.startswith(self._prefix):
            raise ValueError(f"not one of the app's static files: {url}")
        path = safe_join(self._folder, unquote(parts.path[len(self._prefix) :]))
        if path is None or not Path(path).is_file():
            raise ValueError(f"no such static file: {url}")
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=Path(path).read_bytes(), headers={"Content-Type": mime})


def static_fetcher() -> StaticFilesFetcher:
    """The fetcher of the current request's app: its address, its static files."""
    app = current_app
    return StaticFilesFetcher(request.host_url, app.static_folder, app.static_url_path)


def render_pdf(html: str) -> bytes:
    """A PDF of an HTML page of the app, laid out for print (``@media print`` applies)."""
    return HTML(string=html, base_url=request.host_url, url_fetcher=static_fetcher()).write_pdf()


def pdf_response(html: str, filename: str) -> Response:
    """The page as a PDF download."""
    response = Response(render_pdf(html), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
