from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/rapports")

from . import views  # noqa: E402,F401
