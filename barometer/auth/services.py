from sqlalchemy import func, select

from ..extensions import db
from ..models import User


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = db.session.execute(select(User).where(func.lower(User.email) == email.strip().lower())).scalar_one_or_none()
    if user is None or not user.active or not user.check_password(password):
        return None
    return user
