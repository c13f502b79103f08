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

from flask import Response, current_app, request, url_for
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

from ..charts import SVG_NS

# On import, WeasyPrint gives ElementTree's empty prefix (a registry global to the
# process) to its PDF metadata; the charts drawn afterwards would come out as
# <ns0:svg>, which no browser draws. The charts' default namespace is given back.
ET.register_namespace("", SVG_NS)


class StaticFilesFetcher(URLFetcher):
    """Serves ``<base_url><url path>/...`` from the folder of that path; refuses the rest.

    `folders` maps a static URL path (the app's ``/static``, a blueprint's
    ``/pilotage/static``) to the folder it serves. A refused or missing resource raises
    ValueError, which WeasyPrint logs before laying out the page without it.
    """

    def __init__(self, base_url: str, folders: dict[str, str]):
        super().__init__()
        base = urlsplit(base_url)
        self._origin = (base.scheme, base.netloc)
        # The longest path first: a blueprint's folder may sit under another's path.
        paths = sorted(folders, key=len, reverse=True)
        self._folders = {path.rstrip("/") + "/": folders[path] for path in paths}

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise ValueError(f"not one of the app's static files: {url}")
        prefix = next((p for p in self._folders if parts.path.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"not one of the app's static files: {url}")
        path = safe_join(self._folders[prefix], unquote(parts.path[len(prefix) :]))
        if path is None or not Path(path).is_file():
            raise ValueError(f"no such static file: {url}")
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=Path(path).read_bytes(), headers={"Content-Type": mime})


def static_fetcher() -> StaticFilesFetcher:
    """The fetcher of the current request's app: its address, its static files and its
    blueprints' (the director's pages have their own stylesheet)."""
    app = current_app
    folders = {app.static_url_path: app.static_folder}
    for name, blueprint in app.blueprints.items():
        if blueprint.has_static_folder:
            folders[url_for(f"{name}.static", filename="")] = blueprint.static_folder
    return StaticFilesFetcher(request.host_url, folders)


def render_pdf(html: str) -> bytes:
    """A PDF of an HTML page of the app, laid out for print (``@media print`` applies)."""
    return HTML(string=html, base_url=request.host_url, url_fetcher=static_fetcher()).write_pdf()


def pdf_response(html: str, filename: str) -> Response:
    """The page as a PDF download."""
    response = Response(render_pdf(html), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
