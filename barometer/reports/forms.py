"""The report's settings form: a GET form, so a report's address can be bookmarked and shared."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SearchField, SelectField
from wtforms.validators import Length, Optional, ValidationError

#: Period grains a report can be cut into, in display order.
GRAINS = ("month", "quarter", "year")
#: The longest range a report covers: beyond, monthly charts stop being readable.
MAX_YEARS = 10
#: Default range per grain, in months back from the current month.
DEFAULT_MONTHS = {"month": 12, "quarter": 24, "year": 60}


def grain_choices():
    return [("month", _l("Mois")), ("quarter", _l("Trimestre")), ("year", _l("Année"))]


class DayField(DateField):
    """A date typed as AAAA-MM-JJ (what a browser's date input sends), refused in plain French."""

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, format="%Y-%m-%d", **kwargs)

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(_l("Saisissez une date au format AAAA-MM-JJ, par exemple 2025-01-31.")) from None


class ReportForm(FlaskForm):
    """Grain, date range and comment search of a service report.

    Read-only, sent by GET: no CSRF token (nothing changes), no state in the session.
    """

    class Meta:
        csrf = False

    grain = SelectField(_l("Découpage"), choices=grain_choices, default="month", validate_choice=False)
    start = DayField(_l("Du"), validators=[Optional()])
    end = DayField(_l("Au"), validators=[Optional()])
    q = SearchField(
        _l("Rechercher dans les commentaires"),
        validators=[Optional(), Length(max=100, message=_l("100 caractères au plus."))],
    )

    def validate_grain(self, field):
        if field.data not in GRAINS:
            raise ValidationError(_l("Choisissez le mois, le trimestre ou l'année."))

    def validate_end(self, field):
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError(_l("La date de fin doit suivre la date de début."))
        if self.start.data and field.data and (field.data - self.start.data).days > 366 * MAX_YEARS:
            raise ValidationError(_l("La période couverte ne peut dépasser %(n)s ans.", n=MAX_YEARS))


def default_range(grain: str, today: date) -> tuple[date, date]:
    """The default range of a grain: whole periods up to today's."""
    months = DEFAULT_MONTHS[grain]
    y, m = today.year, today.month - months + 1
    while m < 1:
        y, m = y - 1, m + 12
    start = date(y, m, 1)
    if grain == "quarter":
        start = date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
    elif grain == "year":
        start = date(start.year, 1, 1)
    return start, today
