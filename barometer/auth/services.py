from sqlalchemy import select

from ..extensions import db
from ..models import User


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    # Addresses are stored in lower case (create-user, demo), so one lookup suffices.
    user = db.session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()
    if user is None or not user.active or not user.check_password(password):
        return None
    return user
