from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Adresse e-mail"), validators=[DataRequired(_l("Indiquez votre adresse e-mail.")), Length(max=254)]
    )
    password = PasswordField(
        _l("Mot de passe"), validators=[DataRequired(_l("Indiquez votre mot de passe.")), Length(max=200)]
    )


class LogoutForm(FlaskForm):
    """Logging out changes state, so it is a POST with a CSRF token."""
