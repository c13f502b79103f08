"""The director's steering: budgets and the strategic framework, recommendations,
budget scenarios and the indicators board."""

from flask import Blueprint

bp = Blueprint("steering", __name__, url_prefix="/pilotage", static_folder="static", static_url_path="/static")

from . import inputs, views  # noqa: E402,F401
