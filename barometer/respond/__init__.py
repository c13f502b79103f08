from flask import Blueprint

from ..extensions import csrf

bp = Blueprint("respond", __name__)
# No session, no cookie on a resident's pages: the submission refuses cross-site
# requests itself (services.is_cross_site, its signed form token).
csrf.exempt(bp)

from . import views  # noqa: E402,F401
