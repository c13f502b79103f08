"""`flask barometer ...` commands."""

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from surveys.schema import DEFAULT_ROOT, DefinitionError

from . import demo
from .extensions import db
from .loader import load_surveys
from .models import Organisation, Role, Service, User


@click.group("barometer")
def barometer_cli():
    """Baromètre: surveys, demo data and accounts."""


@barometer_cli.command("load-surveys")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--verbose", "-v", is_flag=True, help="Liste chaque élément créé.")
@with_appcontext
def load_surveys_command(path, verbose):
    """Validate and load the survey definitions of PATH (default: surveys/).

    A bad file is refused whole and nothing is written; a questionnaire changed after
    it received responses gets a new version.
    """
    try:
        report = load_surveys(path or DEFAULT_ROOT)
    except DefinitionError as exc:
        raise click.ClickException(f"définitions refusées, rien n'a été chargé.\n{exc}") from exc
    for line in report.lines() if verbose else report.summary():
        click.echo(line)


def _demo_help() -> str:
    planted = "\n".join(f"  - {p.service} : {p.detail}" + (f" ({p.target})" if p.target else "") for p in demo.PLANTED)
    return (
        "Fill the demo commune with synthetic responses, budgets and margins.\n\n"
        "\b\nEffets introduits (les analyses doivent les retrouver) :\n" + planted + "\n\n"
        "Tous les autres services ouverts de la commune n'ont aucun effet introduit : "
        "leurs attributs les mieux notés sont aussi ceux qui comptent le plus, et leur "
        "satisfaction est stable dans le temps et égale entre publics."
    )


@barometer_cli.command("demo", help=_demo_help())
@click.option("--seed", default=1, show_default=True, help="Graine du générateur aléatoire.")
@click.option("--months", default=24, show_default=True, help="Nombre de mois d'historique.")
@click.option("--per-month", default=3000, show_default=True, help="Réponses par mois, tous services confondus.")
@with_appcontext
def demo_command(seed, months, per_month):
    if demo.has_responses():
        raise click.ClickException(
            "la base contient déjà des réponses : la démonstration ne s'ajoute qu'à une base vide."
        )
    load_surveys(DEFAULT_ROOT)
    with click.progressbar(length=months, label="Réponses de démonstration", show_pos=True) as bar:
        stored = demo.generate(
            seed=seed, months=months, per_month=per_month, progress=lambda done, total: bar.update(1)
        )
    demo.add_budgets(seed=seed)
    click.echo(f"{stored} réponses enregistrées sur {months} mois ; budgets sur 3 ans ; marges de population chargées.")
    click.echo("Comptes de démonstration (mot de passe affiché une seule fois) :")
    for email, password in demo.add_users().items():
        click.echo(f"  {email}  {password}")


@barometer_cli.command("create-user")
@click.argument("email")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), help="Rôle (par défaut : manager pour un nouveau compte)."
)
@click.option("--organisation", help="Slug de la collectivité (par défaut : aucune restriction).")
@click.option(
    "--service", "services", multiple=True, help="Slug d'un service du périmètre d'un manager (option répétable)."
)
@click.password_option(help="Mot de passe (demandé s'il n'est pas donné).")
@with_appcontext
def create_user_command(email, role, organisation, services, password):
    """Create a staff account, or change its password; role and scope change only when given."""
    if len(password) < 10:
        raise click.ClickException("le mot de passe doit faire au moins 10 caractères.")
    email = email.strip().lower()
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None:
        user = User(email=email, role=Role(role or Role.manager.value))
        db.session.add(user)
    elif role:
        user.role = Role(role)
    user.set_password(password)
    if organisation:
        org = db.session.execute(select(Organisation).where(Organisation.slug == organisation)).scalar_one_or_none()
        if org is None:
            raise click.ClickException(f"collectivité inconnue : {organisation}")
        user.organisation_id = org.id
    if services:
        found = db.session.execute(select(Service).where(Service.slug.in_(services))).scalars().all()
        unknown = sorted(set(services) - {s.slug for s in found})
        if unknown:
            raise click.ClickException(f"service inconnu : {', '.join(unknown)}")
        user.services = list(found)
    db.session.commit()
    click.echo(f"compte {email} ({user.role.value}) enregistré.")


@barometer_cli.command("is-empty")
@with_appcontext
def is_empty_command():
    """Exit 0 when the database holds no responses yet (used by `make run`)."""
    raise SystemExit(1 if demo.has_responses() else 0)


@barometer_cli.command("urls")
@click.option("--base", default="http://127.0.0.1:8000", show_default=True)
@with_appcontext
def urls_command(base):
    """Print the main URLs: a survey, the reports and the login page."""
    service = (
        db.session.execute(select(Service).where(Service.is_open.is_(True)).order_by(Service.slug)).scalars().first()
    )
    with current_app.test_request_context(base_url=base):
        from flask import url_for

        if service is not None:
            click.echo(f"Questionnaire : {url_for('respond.show_survey', slug=service.slug, _external=True)}")
            click.echo(f"Affiche et QR : {url_for('respond.show_poster', slug=service.slug, _external=True)}")
        click.echo(f"Rapports      : {url_for('reports.list_services', _external=True)}")
        click.echo(f"Connexion     : {url_for('auth.login', _external=True)}")
