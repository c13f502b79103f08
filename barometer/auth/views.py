"""Staff login and logout."""

from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError

from ..errors import render_error, with_retry_after
from ..extensions import limiter
from . import bp
from .forms import LoginForm, LogoutForm
from .services import account_key, authenticate, sign_out

#: Blueprints whose every page is for staff: the sign-in page and what it leads to.
STAFF_BLUEPRINTS = frozenset({"auth", "reports"})


@bp.after_app_request
def keep_staff_pages_out_of_caches(response):
    """A staff page is never kept by the browser or a proxy: after sign-out, the Back
    button or the next person at a shared computer must not find the reports there.

    A page is a staff one by its blueprint, or when it depended on a signed-in member of
    staff (its view or template asked for `current_user`, which Flask-Login loads once
    per request into `g`). Asking here would read the session of every request: a
    resident's page never loads the user, and keeps its own headers.
    """
    user = g.get("_login_user")
    if request.blueprint in STAFF_BLUEPRINTS or (user is not None and user.is_authenticated):
        response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a phishing link borrow our login.
    # Browsers read a backslash as a slash, so "/\\host" would leave the site too, and
    # drop tabs and line breaks, so "/\t/host" is "//host"; a line break in a
    # `Location` header is also refused by the server, which would answer 500.
    if (
        target
        and target.isprintable()
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and urlsplit(target).netloc == ""
    ):
        return target
    return url_for("reports.list_services")


#: Sign-in attempts from one client address: a person who mistypes is never stopped.
SIGN_IN_LIMIT_PER_ADDRESS = "10 per minute"
#: Sign-in attempts on one e-mail address, from any number of client addresses: a
#: guesser with many addresses gets 20 tries an hour, at most 480 a day. The price is
#: that anyone can block an account's sign-in for an hour by failing 20 times.
SIGN_IN_LIMIT_PER_ACCOUNT = "20 per hour"


def _attempted_account() -> str:
    return account_key(request.form.get("email", ""), current_app.config["SECRET_KEY"])


@bp.route("/connexion", methods=["GET", "POST"])
@limiter.limit(SIGN_IN_LIMIT_PER_ADDRESS, methods=["POST"])
@limiter.limit(SIGN_IN_LIMIT_PER_ACCOUNT, key_func=_attempted_account, methods=["POST"])
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


@bp.errorhandler(429)
def refuse_too_many_attempts(error):
    """Too many sign-in attempts: from this client address, the error page says so;
    on this account, the form comes back with the address typed and says so."""
    if getattr(getattr(error, "limit", None), "key_func", None) is not _attempted_account:
        return render_error(error)
    form = LoginForm()
    form.email.errors = [_("Trop de tentatives de connexion sur ce compte en une heure : réessayez plus tard.")]
    return with_retry_after((render_template("auth/login.html", form=form), 429), error)


@bp.route("/deconnexion", methods=["POST"])
@login_required
def logout():
    """Sign out."""
    if LogoutForm().validate_on_submit():
        sign_out(current_user._get_current_object())
        logout_user()
        flash(_("Vous êtes déconnecté(e)."))
    return redirect(url_for("auth.login"))
