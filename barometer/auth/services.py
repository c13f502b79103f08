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


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None.

    A password is checked against a hash whether the address is known or not: the
    answer's delay must not tell which addresses have an account.
    """
    # Addresses are stored in lower case (create-user, demo), so one lookup suffices.
    user = db.session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    matches = user.check_password(password) if user is not None else check_password_hash(_hash_of_nobody(), password)
    if user is None or not user.active or not matches:
        return None
    return user
