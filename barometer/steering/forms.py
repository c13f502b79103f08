"""The scenario form: the saving, the share reinvested, and a name to keep it."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

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
