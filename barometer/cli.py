"""`flask barometer ...` commands.

Everything these commands print, their help included, is for a collectivité's IT staff,
hence in French.
"""

import functools
import time

import click
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from surveys.schema import DEFAULT_ROOT, DefinitionError

from . import demo, results
from .extensions import db
from .loader import load_surveys
from .models import Organisation, Role, Service, User

REPLACE_OPTION = "--remplacer"
#: Seconds between two progress lines of a long import.
PROGRESS_SECONDS = 2.0

#: Click's own `--help` says "Show this message and exit."
french_help = click.help_option("--help", help="Affiche cette aide et quitte.")


def needs_schema(command):
    """Refuse with a French message, not SQLAlchemy's traceback, before `flask db upgrade`
    (or after a new migration, before it is applied)."""

    @functools.wraps(command)
    def checked(*args, **kwargs):
        url = db.engine.url.render_as_string(hide_password=True)
        migrate = current_app.extensions["migrate"]
        heads = set(ScriptDirectory.from_config(migrate.migrate.get_config(migrate.directory)).get_heads())
        try:
            with db.engine.connect() as connection:
                # Where `flask db` keeps the applied revision, if configured elsewhere.
                opts = {k: v for k, v in migrate.configure_args.items() if k.startswith("version_table")}
                applied = set(MigrationContext.configure(connection, opts=opts).get_current_heads())
        except OperationalError as exc:
            raise click.ClickException(
                f"base de données injoignable ({url}) : {exc.orig}\nVérifiez DATABASE_URL."
            ) from exc
        if applied != heads:
            raise click.ClickException(
                f"la base de données ({url}) n'a pas encore son schéma, ou pas sa dernière version : "
                "lancez d'abord `flask db upgrade` (ou `make run`, qui le fait)."
            )
        return command(*args, **kwargs)

    return checked


@click.group("barometer")
@french_help
def barometer_cli():
    """Baromètre : questionnaires, données de démonstration et comptes."""


@barometer_cli.command("load-surveys", short_help="Valide et charge les questionnaires et les services.")
@click.argument("path", metavar="[DOSSIER]", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--verbose", "-v", is_flag=True, help="Liste chaque élément créé.")
@french_help
@with_appcontext
@needs_schema
def load_surveys_command(path, verbose):
    """Valide puis charge les définitions de questionnaires et de services du DOSSIER
    (par défaut : surveys/).

    Un fichier en erreur est refusé en entier et rien n'est écrit ; un questionnaire
    modifié après avoir reçu des réponses obtient une nouvelle version.
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
        "Remplit la commune de démonstration : réponses synthétiques, budgets sur 3 ans, "
        "priorités, marges de population et comptes de démonstration.\n\n"
        "L'historique couvre les mois complets qui précèdent le mois en cours (--months, 24 par défaut) : "
        "aucune réponse n'est datée du mois en cours, ni après le lancement de la commande.\n\n"
        "La base doit être vide de réponses. Budgets, priorités et comptes sont écrits avant les "
        f"réponses ; si la commande est interrompue, relancez-la avec {REPLACE_OPTION}.\n\n"
        "\b\nEffets introduits (les analyses doivent les retrouver) :\n" + planted + "\n\n"
        "Tous les autres services ouverts de la commune n'ont aucun effet introduit : "
        "leurs attributs les mieux notés sont aussi ceux qui comptent le plus, et leur "
        "satisfaction est stable dans le temps, égale entre publics et au niveau de la cible "
        "de leur politique."
    )


@barometer_cli.command("demo", help=_demo_help(), short_help="Remplit la commune de démonstration.")
@click.option("--seed", default=1, help="Graine du générateur aléatoire (1 par défaut).")
@click.option("--months", default=24, help="Nombre de mois complets d'historique (24 par défaut).")
@click.option("--per-month", default=3000, help="Réponses par mois, tous services confondus (3000 par défaut).")
@click.option(
    REPLACE_OPTION,
    "replace",
    is_flag=True,
    help="Supprime d'abord les réponses des services de la commune de démonstration, et "
    "seulement elles (après une démonstration interrompue, par exemple), puis la refait.",
)
@french_help
@with_appcontext
@needs_schema
def demo_command(seed, months, per_month, replace):
    if replace and demo.has_responses(beyond_demo=True):
        raise click.ClickException(
            "la base contient des réponses d'autres collectivités que la commune de démonstration : "
            "la démonstration (et ses comptes) ne s'installe pas à côté de vraies données."
        )
    if demo.has_responses() and not replace:
        raise click.ClickException(
            "la base contient déjà des réponses : la démonstration ne s'ajoute qu'à une base vide. "
            "Pour refaire celle de la commune de démonstration (après une interruption, par exemple), "
            f"relancez avec {REPLACE_OPTION} : seules les réponses de ses services seront supprimées."
        )
    load_surveys(DEFAULT_ROOT)
    if replace:
        click.echo(f"réponses supprimées de la commune de démonstration : {demo.delete_responses()}")
    # Everything but the responses first, so that an interrupted run leaves a usable commune.
    demo.add_budgets(seed=seed)
    click.echo("Comptes de démonstration (mot de passe affiché une seule fois) :")
    for email, password in demo.add_users().items():
        click.echo(f"  {email}  {password}")
    try:
        with click.progressbar(length=months, label="Réponses de démonstration", show_pos=True) as bar:
            stored = demo.generate(
                seed=seed, months=months, per_month=per_month, progress=lambda done, total: bar.update(1)
            )
    except KeyboardInterrupt:
        click.echo(
            "\nDémonstration interrompue : son historique est incomplet. Pour la refaire, lancez "
            f"`flask barometer demo {REPLACE_OPTION}`.",
            err=True,
        )
        raise SystemExit(130) from None
    click.echo(f"{stored} réponses enregistrées sur {months} mois ; budgets sur 3 ans ; marges de population chargées.")


@barometer_cli.command("rebuild-results", short_help="Recalcule les résultats agrégés à partir des réponses.")
@click.option(
    "--service", "slugs", multiple=True, help="Slug d'un service à recalculer (option répétable ; tous par défaut)."
)
@french_help
@with_appcontext
@needs_schema
def rebuild_results_command(slugs):
    """Recalcule les résultats agrégés (les sommes par mois, site et profil que lisent
    les rapports) à partir des réponses enregistrées : après un chargement en masse,
    pour une réparation, ou après la mise à jour qui les crée.

    Chaque service est recalculé dans sa propre transaction : pendant le calcul, les
    rapports lisent les anciens chiffres, puis les nouveaux. Sans danger pendant que
    l'application tourne.
    """
    query = select(Service.id, Service.slug).order_by(Service.slug)
    if slugs:
        query = query.where(Service.slug.in_(slugs))
    services = db.session.execute(query).all()
    unknown = sorted(set(slugs) - {slug for _, slug in services})
    if unknown:
        raise click.ClickException(f"service inconnu : {', '.join(unknown)}")
    db.session.remove()  # each service in a transaction of its own, not the session's
    total = 0
    for position, (service_id, slug) in enumerate(services, start=1):
        with db.engine.begin() as connection:
            read = results.rebuild_service(connection, service_id)
        results.pack_services([service_id])
        total += read
        click.echo(f"[{position}/{len(services)}] {slug} : {read} réponse(s)")
    click.echo(f"Résultats recalculés : {len(services)} service(s), {total} réponse(s).")


@barometer_cli.command("create-user", short_help="Crée un compte du personnel ou change son mot de passe.")
@click.argument("email", metavar="EMAIL")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), help="Rôle (par défaut : manager pour un nouveau compte)."
)
@click.option("--organisation", help="Slug de la collectivité (par défaut : aucune restriction).")
@click.option(
    "--service", "services", multiple=True, help="Slug d'un service du périmètre d'un manager (option répétable)."
)
@click.password_option(
    prompt="Mot de passe",
    confirmation_prompt="Mot de passe (confirmation)",
    help="Mot de passe, 10 caractères au moins (demandé s'il n'est pas donné).",
)
@french_help
@with_appcontext
@needs_schema
def create_user_command(email, role, organisation, services, password):
    """Crée le compte du personnel EMAIL, ou change son mot de passe.

    Le rôle, la collectivité et les services d'un compte existant ne changent que s'ils
    sont donnés.
    """
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


@barometer_cli.command("is-empty", short_help="Dit si la base est encore sans réponse (code de sortie).")
@french_help
@with_appcontext
@needs_schema
def is_empty_command():
    """Sort avec le code 0 si la base ne contient encore aucune réponse, 1 sinon
    (utilisé par `make run`)."""
    raise SystemExit(1 if demo.has_responses() else 0)


@barometer_cli.command("urls", short_help="Affiche les adresses principales.")
@click.option(
    "--base",
    default="http://127.0.0.1:8000",
    help="Adresse de l'application au début de chaque lien (par défaut : http://127.0.0.1:8000).",
)
@french_help
@with_appcontext
@needs_schema
def urls_command(base):
    """Affiche les adresses principales : un questionnaire, son affiche, les rapports et
    la page de connexion."""
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


def _import_command(name: str, path: str, noun: str) -> None:
    # The same validation and writing as the director's pages (`steering.imports`).
    from .steering import imports

    try:
        report = getattr(imports, name)(path)
    except imports.ImportRefused as exc:
        raise click.ClickException(f"fichier refusé, rien n'a été importé :\n{exc}") from exc
    click.echo(report.summary(noun))


@barometer_cli.command("import-allocations", short_help="Importe les budgets, effectifs et volumes des services.")
@click.argument("path", metavar="FICHIER", type=click.Path(dir_okay=False, path_type=str))
@french_help
@with_appcontext
@needs_schema
def import_allocations_command(path):
    """Importe les allocations du FICHIER (CSV ou XLSX) : une ligne par service et par
    année, colonnes service (slug), year (année), budget_eur (budget de fonctionnement
    en euros), fte (effectif en équivalents temps plein) et volume (visites, usagers ou
    dossiers traités dans l'année ; peut rester vide).

    Le fichier est vérifié en entier avant toute écriture : une seule ligne en erreur
    et rien n'est importé ; chaque erreur donne sa ligne, sa colonne et sa raison. Un
    nouvel import met à jour les lignes (service, année) déjà connues. Une colonne name
    (nom du service) est acceptée et ignorée ; une ligne sans aucun chiffre est passée.
    """
    _import_command("import_allocations", path, "allocation(s)")


@barometer_cli.command("import-priorities", short_help="Importe le référentiel stratégique des politiques.")
@click.argument("path", metavar="FICHIER", type=click.Path(dir_okay=False, path_type=str))
@french_help
@with_appcontext
@needs_schema
def import_priorities_command(path):
    """Importe le référentiel stratégique du FICHIER (CSV ou XLSX) : une ligne par
    politique, colonnes policy (slug), priority (1 essentielle, 2 importante,
    3 secondaire), floor_eur (allocation minimale en euros sous laquelle la politique ne
    peut plus fonctionner), target_satisfied (part d'usagers satisfaits visée, entre 0
    et 1) et deadline (échéance, AAAA-MM-JJ) ; les trois dernières peuvent rester vides.

    Le fichier est vérifié en entier avant toute écriture : une seule ligne en erreur
    et rien n'est importé ; chaque erreur donne sa ligne, sa colonne et sa raison. Un
    nouvel import met à jour les politiques déjà connues. Une colonne name (nom de la
    politique) est acceptée et ignorée.
    """
    _import_command("import_priorities", path, "priorité(s)")


@barometer_cli.command("import-responses", short_help="Importe des réponses recueillies ailleurs (historique).")
@click.argument("path", metavar="FICHIER", type=click.Path(dir_okay=False, path_type=str))
@click.option("--verifier", "check_only", is_flag=True, help="Vérifie le fichier sans rien importer.")
@french_help
@with_appcontext
@needs_schema
def import_responses_command(path, check_only):
    """Importe les réponses du FICHIER (CSV ou XLSX) recueillies ailleurs (questionnaires
    papier saisis, export d'un outil précédent), pour que les tendances commencent avant
    le baromètre.

    Une ligne par réponse ; colonnes service (slug), submitted_at (AAAA-MM-JJ ou
    AAAA-MM-JJ HH:MM, en UTC sauf décalage indiqué), channel (facultative, « import »
    par défaut), site (facultative, code d'un site du service), puis une colonne par clé
    de question du questionnaire du service (overall obligatoire ; échelles en nombres,
    na pour non concerné ; choix par leur code, plusieurs codes séparés par « | » ou « ; » ; oui/non
    ou 1/0) et les colonnes de profil age_band, sex, area, frequency (par code). Une
    colonne absente ou une case vide est une question sans réponse.

    Le fichier est vérifié en entier avant toute écriture : une seule ligne en erreur
    et rien n'est importé ; chaque erreur donne sa ligne, sa colonne et sa raison. Le
    même fichier importé deux fois n'ajoute rien. Un import interrompu se termine en
    relançant la même commande. L'avancement s'affiche sur la sortie d'erreur.
    """
    # Imported here, not at the top: see `_import_command`.
    from . import history

    stages = {
        "checked": "vérification : {count} ligne(s) lue(s)",
        "stored": "import : {count} ligne(s) sur {total}",
        "packed": "rangement des résultats : {count} service(s) sur {total}",
    }
    shown = {"at": time.monotonic()}

    def progress(stage: str, count: int, total: int | None) -> None:
        now = time.monotonic()
        if now - shown["at"] >= PROGRESS_SECONDS:
            shown["at"] = now
            click.echo(stages[stage].format(count=count, total=total), err=True)

    try:
        report = history.import_responses(path, check_only=check_only, progress=progress)
    except history.HistoryRefused as exc:
        raise click.ClickException(f"fichier refusé, rien n'a été importé :\n{exc}") from exc
    except history.HistoryInterrupted as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report.summary())


# ---------------------------------------------------------------- the director's steering

FORMAT_OPTION = click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text (par défaut) : un texte lisible ; json : pour un autre programme.",
)
YEAR_OPTION = click.option("--year", type=int, help="Année des budgets (par défaut : la dernière allouée).")


def _eur(x: float) -> str:
    return f"{x:,.0f} €".replace(",", "\u202f")


def _pct(p: float | None) -> str:
    return "–" if p is None else f"{100 * p:.0f} %"


@barometer_cli.command(
    "recommend", short_help="Recommande, par service, de renforcer, réduire, maintenir ou surveiller."
)
@YEAR_OPTION
@FORMAT_OPTION
@french_help
@with_appcontext
@needs_schema
def recommend_command(year, output):
    """Recommande pour chaque service de renforcer (besoins mal couverts), réduire
    (sur-qualité), maintenir ou surveiller (pas assez de réponses), avec sa raison en une
    phrase et les chiffres qui la fondent : part de satisfaits de l'année (redressée sur
    les marges de la population quand la collectivité les a saisies) comparée à la cible
    de la politique et aux services de la même politique, priorité de la politique et
    coût par usager, écarts testés avec contrôle du taux de fausses découvertes. Chaque
    service est comparé aux services de sa collectivité. La phrase et les chiffres
    nomment aussi les critères qui pèsent le plus mais restent mal notés
    (under_served_attributes) et ceux où l'effort peut être allégé (effort_savings).
    """
    import json

    # Imported when run: the statistics libraries would weigh on every app start.
    from analysis.redeploy import RECOMMENDATION_LABELS, RECOMMENDATIONS

    from .steering.services import note_text, recommend_by_organisation, steering_inputs

    inputs = steering_inputs(None, year=year)
    if inputs.empty:
        raise click.ClickException(
            "aucune allocation pour cette année : importez d'abord les budgets (`flask barometer import-allocations`)."
        )
    recs = recommend_by_organisation(inputs)
    if output == "json":
        click.echo(json.dumps([row for r in recs for row in r.to_list()], ensure_ascii=False, indent=2))
        return
    table = [row for r in recs for row in r.table[["service", "recommendation", "reason"]].itertuples(index=False)]
    click.echo(f"Recommandations {inputs.year} ({len(table)} services)")
    for code, count in inputs.notes:
        click.echo(f"  {note_text(code, count)}")
    for rec in RECOMMENDATIONS:
        rows = [r for r in table if r.recommendation == rec]
        if rows:
            click.echo(f"\n{RECOMMENDATION_LABELS[rec]} : {len(rows)}")
            for r in rows:
                click.echo(f"  - {r.service} : {r.reason}")


def _saving_option(_ctx, _param, value):
    from .steering.services import parse_saving

    try:
        return parse_saving(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@barometer_cli.command("scenario", short_help="Compare la réduction uniforme et la réduction stratégique.")
@click.option(
    "--saving",
    required=True,
    callback=_saving_option,
    help="Économie visée : un montant en euros (1 ou plus), une part du budget total (moins de 1) ou un pourcentage (8 %).",
)
@click.option(
    "--reinvest",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Part de l'économie réinvestie dans les services à renforcer (entre 0 et 1 ; 0 par défaut).",
)
@click.option("--organisation", help="Slug de la collectivité, quand la base en compte plusieurs avec des budgets.")
@YEAR_OPTION
@FORMAT_OPTION
@french_help
@with_appcontext
@needs_schema
def scenario_command(saving, reinvest, organisation, year, output):
    """Compare deux façons d'économiser --saving sur les budgets de l'année : la
    réduction uniforme (chaque service perd la même part) et la réduction stratégique
    (une optimisation qui prend d'abord aux services en sur-qualité et aux politiques
    secondaires, ne descend jamais sous le plancher d'une politique et maximise la
    satisfaction projetée), avec la satisfaction projetée de chacune et sa fourchette.

    Une économie impossible sans passer sous un plancher est refusée avec sa raison
    (code de sortie 1).
    """
    import json

    from .steering.services import ScenarioRefused, run_scenario

    org_id = None
    if organisation:
        org = db.session.execute(select(Organisation).where(Organisation.slug == organisation)).scalar_one_or_none()
        if org is None:
            raise click.ClickException(f"collectivité inconnue : {organisation}")
        org_id = org.id
    try:
        doc = run_scenario(None, saving=saving, reinvest=reinvest, year=year, organisation_id=org_id)
    except ScenarioRefused as exc:
        raise click.ClickException(exc.reason) from exc
    if output == "json":
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"Budget {doc['year']} : {_eur(doc['total_before'])} ; économie : {_eur(doc['saving'])}"
        + (f" (et {_eur(doc['reinvested'])} réinvestis)" if doc["reinvested"] else "")
    )
    click.echo(f"Élasticité : {doc['elasticity']['reason']}")
    click.echo(f"Satisfaction actuelle : {_pct(doc['satisfied_before'])}")
    for title, key in (("Réduction uniforme", "even"), ("Réduction stratégique", "strategic")):
        sol = doc["solutions"][key]
        low, high = sol["projected_satisfied_range"]
        click.echo(f"\n{title} : satisfaction projetée {_pct(sol['projected_satisfied'])} ({_pct(low)} à {_pct(high)})")
        click.echo("  politiques sous leur plancher : " + (", ".join(sol["below_floor"]) or "aucune"))
        for r in sol["services"]:
            if abs(r["after"] - r["before"]) >= 0.005:
                click.echo(f"  - {r['service']} : {_eur(r['before'])} → {_eur(r['after'])}")
    for note in doc["notes"]:
        click.echo(f"\n{note}")
