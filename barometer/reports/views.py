"""The service manager's pages."""

from flask import render_template
from flask_login import current_user, login_required

from ..auth.forms import LogoutForm
from . import bp
from .services import services_in_scope


@bp.route("/")
@login_required
def list_services():
    """The services in the user's scope, with their response counts and survey links."""
    return render_template("reports/services.html", rows=services_in_scope(current_user), logout_form=LogoutForm())
