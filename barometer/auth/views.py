"""Staff login and logout."""

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError

from ..errors import render_error
from ..extensions import limiter
from . import bp
from .forms import LoginForm, LogoutForm
from .services import authenticate, sign_out


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a phishing link borrow our login.
    # Browsers read a backslash as a slash, so "/\\host" would leave the site too.
    if (
        target
        and urlsplit(target).netloc == ""
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return url_for("reports.list_services")


@bp.route("/connexion", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login():
    """Sign a member of staff in."""
    if current_user.is_authenticated:
        return redirect(url_for("reports.list_services"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors = [_("Adresse e-mail ou mot de passe incorrect.")]
        status = 422
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.errorhandler(CSRFError)
def refuse_stale_form(error: CSRFError):
    """A staff form sent without a valid CSRF token: expired (left open too long), from
    an older session, or forged. The sign-in form comes back with the address typed and
    a message to send it again; nothing is done, as for any refused token."""
    if request.endpoint != "auth.login" or current_user.is_authenticated:
        return render_error(error)
    form = LoginForm()
    form.csrf_token.errors = [error.description]
    return render_template("auth/login.html", form=form), 400


@bp.route("/deconnexion", methods=["POST"])
@login_required
def logout():
    """Sign out."""
    if LogoutForm().validate_on_submit():
        sign_out(current_user._get_current_object())
        logout_user()
        flash(_("Vous êtes déconnecté(e)."))
    return redirect(url_for("auth.login"))
