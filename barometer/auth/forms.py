from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

# Every validator carries its own message, in French and translated by Babel: WTForms'
# defaults are English (its catalogues are not loaded, see `WTF_I18N_ENABLED`).


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Adresse e-mail"),
        validators=[
            DataRequired(_l("Indiquez votre adresse e-mail.")),
            Length(max=254, message=_l("Une adresse e-mail ne dépasse pas %(max)d caractères.")),
            Regexp(
                r"^[^@\s]+@[^@\s]+$",
                message=_l("Indiquez une adresse e-mail complète, par exemple nom@ma-commune.fr."),
            ),
        ],
    )
    password = PasswordField(
        _l("Mot de passe"),
        validators=[
            DataRequired(_l("Indiquez votre mot de passe.")),
            Length(max=200, message=_l("Un mot de passe ne dépasse pas %(max)d caractères.")),
        ],
    )


class LogoutForm(FlaskForm):
    """Logging out changes state, so it is a POST with a CSRF token."""
