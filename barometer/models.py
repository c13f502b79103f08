"""The nouns of the product, as SQLAlchemy 2.0 typed models."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class FloatVector(TypeDecorator):
    """A vector of floats stored as its bytes (8-byte big-endian IEEE 754, the order
    PostgreSQL's ``float8send`` writes): read back without parsing any text, and the
    same bytes on SQLite and PostgreSQL."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else np.asarray(value, dtype=">f8").tobytes()

    def process_result_value(self, value, dialect):
        return None if value is None else np.frombuffer(value, dtype=">f8").astype(float)


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrganisationKind(enum.StrEnum):
    commune = "commune"
    epci = "epci"
    departement = "departement"
    region = "region"


class Channel(enum.StrEnum):
    """How a resident reached the survey."""

    qr = "qr"
    link = "link"
    sms = "sms"
    email = "email"
    kiosk = "kiosk"
    api = "api"
    #: Collected elsewhere (paper questionnaires typed in, a previous tool's export)
    #: and brought in by `flask barometer import-responses`.
    imported = "import"


#: Channels a resident can come through in a browser (neither the API nor an import).
WEB_CHANNELS = frozenset(c.value for c in Channel if c not in (Channel.api, Channel.imported))


def web_channel(value: str | None) -> Channel:
    """The channel a web form says it came by; anything else (or the API's) is a link."""
    return Channel(value) if value in WEB_CHANNELS else Channel.link


class Role(enum.StrEnum):
    admin = "admin"
    director = "director"
    manager = "manager"


class Organisation(db.Model):
    """A collectivité; every service belongs to one."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Stable identifier from the services file.
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganisationKind] = mapped_column(Enum(OrganisationKind, native_enum=False, length=20))
    #: The areas (quartiers) residents choose from: [{"code", "label": {"fr", "en"}}].
    areas: Mapped[list] = mapped_column(JSON, default=list)

    services: Mapped[list[Service]] = relationship(back_populates="organisation")


class Domain(db.Model):
    """One of the 9 domains of local public action."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Display order, as in the catalogue.
    position: Mapped[int] = mapped_column(default=0)

    policies: Mapped[list[Policy]] = relationship(back_populates="domain", order_by="Policy.position")


class Policy(db.Model):
    """A public policy within a domain (about 55 in all)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    position: Mapped[int] = mapped_column(default=0)

    domain: Mapped[Domain] = relationship(back_populates="policies")


class Questionnaire(db.Model):
    """A questionnaire; its content lives in immutable versions."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)

    versions: Mapped[list[QuestionnaireVersion]] = relationship(
        back_populates="questionnaire", order_by="QuestionnaireVersion.number"
    )

    @property
    def current(self) -> QuestionnaireVersion:
        return self.versions[-1]


class QuestionnaireVersion(db.Model):
    """A questionnaire's content at one time; frozen once it has a response."""

    __table_args__ = (UniqueConstraint("questionnaire_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaire.id"))
    #: 1, 2, 3 ... in order of creation.
    number: Mapped[int]
    #: SHA-256 of the canonical definition, to tell whether a file changed.
    checksum: Mapped[str] = mapped_column(String(64))
    #: The resolved definition (core questions included), as plain JSON.
    definition: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    questionnaire: Mapped[Questionnaire] = relationship(back_populates="versions")


class Service(db.Model):
    """A public service residents use (a pool, a library, the civil registry ...)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Appears in the survey's URL: /s/<slug>.
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policy.id"))
    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaire.id"))
    #: A closed survey says so instead of taking answers.
    is_open: Mapped[bool] = mapped_column(default=True)

    organisation: Mapped[Organisation] = relationship(back_populates="services")
    policy: Mapped[Policy] = relationship()
    questionnaire: Mapped[Questionnaire] = relationship()
    sites: Mapped[list[Site]] = relationship(back_populates="service", order_by="Site.code")


class Site(db.Model):
    """A counter or place where a service's QR code hangs."""

    __table_args__ = (UniqueConstraint("service_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    code: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    #: A closed site's survey says so instead of taking answers (its responses stay).
    is_open: Mapped[bool] = mapped_column(default=True, server_default=true())

    service: Mapped[Service] = relationship(back_populates="sites")


class Response(db.Model):
    """One resident's submitted questionnaire. No IP address, no identifier."""

    __table_args__ = (Index("ix_response_service_submitted", "service_id", "submitted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: The one-time token of the form: a retry with the same token is the same response.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("questionnaire_version.id"))
    #: Truncated to the hour on storage (see storage.py): no finer trace of the visit.
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    channel: Mapped[Channel] = mapped_column(Enum(Channel, native_enum=False, length=10))
    #: Profile answers used for weighting and segments (codes of the core questionnaire).
    age_band: Mapped[str | None] = mapped_column(String(20))
    sex: Mapped[str | None] = mapped_column(String(20))
    area: Mapped[str | None] = mapped_column(String(40))
    frequency: Mapped[str | None] = mapped_column(String(20))

    answers: Mapped[list[Answer]] = relationship(back_populates="response")


class Answer(db.Model):
    """One answer: a number, a choice code or a text, under a stable question key."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    response_id: Mapped[int] = mapped_column(BigId, ForeignKey("response.id", ondelete="CASCADE"), index=True)
    question_key: Mapped[str] = mapped_column(String(64))
    #: Scale points, 0-10, yes (1) / no (0); NULL for "non concerné".
    value: Mapped[float | None] = mapped_column(Float)
    #: A choice code (one row per code chosen for a multiple choice), or "na".
    choice: Mapped[str | None] = mapped_column(String(64))
    #: Free text, with e-mail addresses and phone numbers already masked.
    text: Mapped[str | None] = mapped_column(Text)

    response: Mapped[Response] = relationship(back_populates="answers")


class Allocation(db.Model):
    """What a service costs and serves in a year."""

    __table_args__ = (UniqueConstraint("service_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    year: Mapped[int]
    #: Operating budget in euros.
    budget_eur: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    #: Staff in full-time equivalents.
    staff_fte: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    #: Visits, users or files handled in the year.
    volume: Mapped[int | None]


class Priority(db.Model):
    """The strategic framework: a policy's priority, floor and target."""

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policy.id"), unique=True)
    #: 1 (highest) to 3.
    level: Mapped[int]
    #: Minimum allocation in euros below which the policy cannot go.
    floor_eur: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    #: Target share of satisfied residents (0-1).
    satisfaction_target: Mapped[float | None]
    deadline: Mapped[date | None] = mapped_column(Date)


class PopulationMargin(db.Model):
    """A population share used for raking (age band, sex, area)."""

    __table_args__ = (UniqueConstraint("organisation_id", "dimension", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    dimension: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(40))
    share: Mapped[float]


user_service = Table(
    "user_service",
    db.metadata,
    Column("user_id", ForeignKey("account.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", ForeignKey("service.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, db.Model):
    """Staff who read reports; managers see the services in their scope."""

    __tablename__ = "account"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    active: Mapped[bool] = mapped_column(default=True)
    #: Carried by every session of the account; raised to end them all (logout,
    #: password change, deactivation).
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    services: Mapped[list[Service]] = relationship(secondary=user_service)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive accounts
        return self.active

    def get_id(self) -> str:
        """The identity a session carries: the account and its session version, so
        that raising the version makes every session (and remember cookie) issued
        before it name no one."""
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        """End every session of the account, on every browser, at the next request."""
        self.session_version = (self.session_version or 1) + 1

    @validates("active")
    def _end_sessions_when_deactivated(self, _key: str, active: bool) -> bool:
        if not active:
            self.end_sessions()
        return active

    def set_password(self, password: str) -> None:
        """Set a new password; a session opened with the old one must not outlive it."""
        if self.password_hash is not None:
            self.end_sessions()
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


# ------------------------------------------------------------ the results read model
# Sufficient statistics of the responses, kept by barometer/results.py. Their keys hold
# no NULL (a primary key cannot): no site is 0, a missing profile answer is "".


class ResultCell(db.Model):
    """Count, sum, sum of squares and count satisfied of one question's numeric answers,
    per service, month, site and profile cell."""

    __tablename__ = "result_cell"
    # Keyed by service first: one service's report reads one contiguous range.
    __table_args__ = ({"sqlite_with_rowid": False},)

    #: The service answered.
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    #: First day of the month of submission (UTC).
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    #: The site's id, 0 for a response given at no site (no foreign key: 0 is no row).
    site_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    #: The question key; "_responses" counts the responses of the cell themselves.
    question_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Profile cell: age band, sex, area and frequency codes, "" when missing or "nsp".
    age_band: Mapped[str] = mapped_column(String(20), primary_key=True)
    sex: Mapped[str] = mapped_column(String(20), primary_key=True)
    area: Mapped[str] = mapped_column(String(40), primary_key=True)
    frequency: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: Numeric answers (responses, for "_responses").
    n: Mapped[int] = mapped_column(BigInteger)
    #: Sum of the values.
    total: Mapped[float] = mapped_column(Float)
    #: Sum of the squared values.
    total_sq: Mapped[float] = mapped_column(Float)
    #: Answers counted as satisfied (analysis.scales.SATISFIED; meaningful on 1-5 scales).
    satisfied: Mapped[int] = mapped_column(BigInteger)


class ResultMoments(db.Model):
    """Count, sums and cross-products of overall and the drivers over the responses that
    answer all of them, per service, month, site and profile cell."""

    __tablename__ = "result_moments"
    __table_args__ = ({"sqlite_with_rowid": False},)

    #: The service answered.
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    #: First day of the month of submission (UTC).
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    #: The site's id, 0 for a response given at no site.
    site_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    #: Profile cell, as in ResultCell.
    age_band: Mapped[str] = mapped_column(String(20), primary_key=True)
    sex: Mapped[str] = mapped_column(String(20), primary_key=True)
    area: Mapped[str] = mapped_column(String(40), primary_key=True)
    frequency: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: The variables, space-separated: "overall", then the questionnaire's drivers.
    variables: Mapped[str] = mapped_column(String(1000), primary_key=True)
    #: Complete rows (responses answering every variable).
    n: Mapped[int] = mapped_column(BigInteger)
    #: Upper triangle, row by row, of the cross-product matrix of [1, variables...].
    moments: Mapped[np.ndarray] = mapped_column(FloatVector)


class ResultMonthVersion(db.Model):
    """The data version of one month of a service: the service's data version when that
    month's results last changed. Caches of a date range key on the greatest of its
    months, so responses to the current month leave the results of past months cached."""

    __tablename__ = "result_month_version"
    __table_args__ = ({"sqlite_with_rowid": False},)

    #: The service.
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    #: First day of the month (UTC), as in ResultCell.
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    #: The service's `ResultVersion.version` when the month last changed (never lowered).
    version: Mapped[int] = mapped_column(BigInteger)


class ResultPack(db.Model):
    """One month of a service's cells or moments, packed in one value: the read model's
    rows of a past month, compacted for reading (`results.cells_frame` reads a packed month
    as one value instead of its thousands of rows). Valid while `version` equals the
    month's `ResultMonthVersion.version`; a stale or missing pack is rebuilt from the rows
    by the next reader. Never the only copy of anything: the rows stay the truth."""

    __tablename__ = "result_pack"
    __table_args__ = ({"sqlite_with_rowid": False},)

    #: The service.
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    #: First day of the month (UTC), as in ResultCell.
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    #: "cells" (rows of ResultCell) or "moments" (rows of ResultMoments).
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: The month's version the rows were read at.
    version: Mapped[int] = mapped_column(BigInteger)
    #: The rows, packed by `results.pack_rows`.
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ResultVersion(db.Model):
    """A service's data version: raised whenever its read model changes."""

    __tablename__ = "result_version"

    #: The service.
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"), primary_key=True)
    #: Raised by every recording and rebuild; caches are keyed on it.
    version: Mapped[int] = mapped_column(BigInteger)
    #: Responses counted in the read model.
    responses: Mapped[int] = mapped_column(BigInteger)


class Scenario(db.Model):
    """A budget scenario a director saved under a name, to compare and export later."""

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The director's name for it ("Budget 2027, -8 %").
    name: Mapped[str] = mapped_column(String(120))
    #: The organisation whose budgets it cuts; None for a scope of every organisation.
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"), index=True)
    #: What was asked: {"year", "saving", "reinvest"} (saving: euros, or a share below 1).
    parameters: Mapped[dict] = mapped_column(JSON)
    #: The result as `analysis.redeploy.Scenarios.to_dict` gives it, at the time it was saved.
    result: Mapped[dict] = mapped_column(JSON)
    #: Who saved it (kept when the account is deleted: the scenario belongs to the organisation).
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()
    created_by: Mapped[User | None] = relationship()
