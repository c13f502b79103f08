"""A health check for load balancers and monitoring: the app answers, and its database
takes responses."""

from flask import Blueprint, jsonify
from sqlalchemy import false, insert, select

from .extensions import db
from .models import Response

bp = Blueprint("health", __name__)

#: A write of no row into the responses table, rolled back. The database checks it as
#: it would a resident's response: it refuses it when it is read-only (a standby, a
#: read-only transaction or role, a read-only SQLite file), when the account may not
#: insert, or, after the lock timeout, when the table is locked; yet nothing is written,
#: no sequence number spent, no row locked.
WRITE_PROBE = insert(Response).from_select(["token"], select(Response.token).where(false()))


@bp.get("/sante")
def check_health():
    """200 when the database accepts a response, 503 when it is unreachable or refuses
    writes; no data, no authentication needed."""
    try:
        db.session.execute(WRITE_PROBE)
    except Exception:  # any database failure means "not ready", whatever its kind
        return jsonify(status="indisponible", database=False), 503
    finally:
        db.session.rollback()
    return jsonify(status="ok", database=True)
