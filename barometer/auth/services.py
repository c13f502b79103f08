import hmac
from functools import lru_cache
from secrets import token_urlsafe

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import User


@lru_cache(maxsize=1)
def _hash_of_nobody() -> str:
    """A password hash no one knows, of the same kind as the users' ones."""
    return generate_password_hash(token_urlsafe(32))


def normalise_email(email: str) -> str:
    """An address as accounts store it (create-user, demo): trimmed, in lower case."""
    return email.strip().lower()


def account_key(email: str, secret_key: str) -> str:
    """The rate limiter's key for sign-in attempts on one address.

    A keyed hash, not the address: the limiter's storage (Redis, shared by the
    workers) must not hold a list of the addresses tried, nor one that can be
    rebuilt from a dictionary without the app's secret key.
    """
    digest = hmac.new(secret_key.encode(), normalise_email(email).encode(), "sha256").hexdigest()
    return f"account:{digest}"


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None.

    A password is checked against a hash whether the address is known or not: the
    answer's delay must not tell which addresses have an account.
    """
    user = db.session.execute(select(User).where(User.email == normalise_email(email))).scalar_one_or_none()
    matches = user.check_password(password) if user is not None else check_password_hash(_hash_of_nobody(), password)
    if user is None or not user.active or not matches:
        return None
    return user


def load_user(session_id: str) -> User | None:
    """The account a session names (`User.get_id`), while that session is still valid.

    A session names the account's session version at sign-in; raising the version
    (sign-out, password change, deactivation) ends every session that names an older
    one, wherever its cookie was copied to. An identity without a version, from before
    sessions carried one, names no one.
    """
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


def sign_out(user: User) -> None:
    """End every session of the account: signing out on one browser signs out a
    copied cookie and every other browser too."""
    user.end_sessions()
    db.session.commit()
