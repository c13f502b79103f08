"""The director's forms: a budget scenario, and the inputs (allocations, priorities,
and the files that import them)."""

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import FieldList, Form, FormField, HiddenField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import DateInput

from . import imports
from .services import parse_saving

# Every validator carries its own message, in French and translated by Babel: WTForms'
# defaults are English (its catalogues are not loaded).


class ScenarioForm(FlaskForm):
    saving = StringField(
        _l("Économie visée"),
        validators=[DataRequired(_l("Indiquez l'économie visée : un montant en euros ou un pourcentage du budget."))],
    )
    reinvest = StringField(_l("Part de l'économie réinvestie dans les services à renforcer (%)"), default="0")
    year = SelectField(_l("Année des budgets"), coerce=int, validate_choice=False)
    organisation = SelectField(_l("Collectivité"), coerce=int, validate_choice=False)
    name = StringField(
        _l("Nom du scénario"),
        # No Optional(): it would stop the chain before `validate_name`.
        validators=[Length(max=120, message=_l("Un nom ne dépasse pas %(max)d caractères."))],
    )
    run = SubmitField(_l("Comparer les deux solutions"))
    save = SubmitField(_l("Comparer et enregistrer"))

    def validate_saving(self, field):
        try:
            self.saving_value = parse_saving(field.data or "")
        except ValueError:
            raise ValidationError(
                _l(
                    "Indiquez un montant en euros (par exemple 1 500 000) ou un pourcentage du budget total "
                    "(par exemple 8 %)."
                )
            ) from None

    def validate_reinvest(self, field):
        text = (field.data or "0").strip().rstrip("%").strip().replace(",", ".")
        try:
            share = float(text)
        except ValueError:
            share = -1.0
        if not 0 <= share <= 100:
            raise ValidationError(_l("Indiquez une part entre 0 et 100 %."))
        self.reinvest_value = share / 100

    def validate_year(self, field):
        if field.data not in [value for value, _label in self.year.choices]:
            raise ValidationError(_l("Choisissez une année qui a des budgets."))

    def validate_organisation(self, field):
        if self.organisation.choices and field.data not in [value for value, _label in self.organisation.choices]:
            raise ValidationError(_l("Choisissez une collectivité de votre périmètre."))

    def validate_name(self, field):
        if self.save.data and not (field.data or "").strip():
            raise ValidationError(_l("Donnez un nom au scénario pour l'enregistrer."))


# ------------------------------------------------------------------ the director's inputs
# One row form per service (or policy), in a list under the page's form, which alone
# carries the CSRF token. A row's values are parsed by the file imports' own parsers
# (`imports.parse_*`): the page and a file accept and refuse the same values, for the
# same reasons, which the page shows translated.

#: The priority levels of `analysis.redeploy.PRIORITY_LABELS`, as the page offers them.
PRIORITY_CHOICES = [
    SelectChoice("", _l("à définir")),
    SelectChoice("1", _l("1 – essentielle")),
    SelectChoice("2", _l("2 – importante")),
    SelectChoice("3", _l("3 – secondaire")),
]


class _InputRow(Form):
    """A row of inputs: its fields' parsers, and whether it must be filled (it holds
    stored figures, which a page cannot delete)."""

    #: (field name, record key, parser, required when the row is filled)
    parsers: tuple = ()
    #: Set by the page for a row with figures stored.
    required = False

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        self.record = None
        raw = {name: (getattr(self, name).data or "").strip() for name, *_rest in self.parsers}
        if not self.required and not any(raw.values()):
            return ok  # left empty: nothing to say, nothing saved
        record = {}
        for name, key, parse, needed in self.parsers:
            field = getattr(self, name)
            if not raw[name]:
                record[key] = None
                if needed:
                    field.errors.append(gettext(imports.MISSING))
                    ok = False
                continue
            try:
                record[key] = parse(raw[name])
            except imports.CellError as exc:
                field.errors.append(exc.text(gettext))
                ok = False
        if ok:
            self.record = record
        return ok


class AllocationRow(_InputRow):
    service = HiddenField()
    budget_eur = StringField(_l("Budget (€)"))
    fte = StringField(_l("Effectif (ETP)"))
    volume = StringField(_l("Volume"))
    parsers = (
        ("budget_eur", "budget_eur", imports.parse_euros, True),
        ("fte", "fte", imports.parse_fte, True),
        ("volume", "volume", imports.parse_count, False),
    )


class BudgetsForm(FlaskForm):
    """The allocations of one year, one row per service."""

    rows = FieldList(FormField(AllocationRow))
    save = SubmitField(_l("Enregistrer les allocations"))


class PriorityRow(_InputRow):
    policy = HiddenField()
    priority = SelectField(_l("Priorité"), choices=PRIORITY_CHOICES, validate_choice=False)
    floor_eur = StringField(_l("Plancher (€)"))
    target = StringField(_l("Cible (part de satisfaits, %)"))
    deadline = StringField(_l("Échéance"), widget=DateInput())
    parsers = (
        ("priority", "priority", imports.parse_priority, True),
        ("floor_eur", "floor_eur", imports.parse_euros, False),
        ("target", "target_satisfied", imports.parse_percent, False),
        ("deadline", "deadline", imports.parse_date, False),
    )


class PrioritiesForm(FlaskForm):
    """The strategic framework, one row per policy."""

    rows = FieldList(FormField(PriorityRow))
    save = SubmitField(_l("Enregistrer le référentiel"))


class UploadForm(FlaskForm):
    """A CSV or XLSX file of allocations or priorities, checked whole before import."""

    file = FileField(
        _l("Fichier CSV ou XLSX"), validators=[FileRequired(_l("Choisissez un fichier CSV ou XLSX à importer."))]
    )
    upload = SubmitField(_l("Importer le fichier"))
