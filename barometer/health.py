"""A health check for load balancers and monitoring: the app answers and the database too."""

from flask import Blueprint, jsonify
from sqlalchemy import text

from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/sante")
def check_health():
    """200 when the database answers, 503 otherwise; no data, no authentication needed."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not ready", whatever its kind
        db.session.rollback()
        return jsonify(status="indisponible", database=False), 503
    return jsonify(status="ok", database=True)
