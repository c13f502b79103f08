"""Queries behind the service manager's pages."""

from dataclasses import dataclass

from sqlalchemy import func, select, true
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import Response, Role, Service, User


@dataclass(frozen=True)
class ServiceRow:
    slug: str
    name: str
    policy: str
    is_open: bool
    responses: int
    last_response: object


def scope_filter(user: User):
    """The SQL condition on Service for what a user may see: the one place for the rule.

    Managers see the services they are given; directors and admins see their
    organisation's, or every organisation's when they belong to none.
    """
    if user.role == Role.manager:
        return Service.id.in_([s.id for s in user.services])
    if user.organisation_id is not None:
        return Service.organisation_id == user.organisation_id
    return true()


def services_in_scope(user: User) -> list[ServiceRow]:
    """The services a user may see, with how many responses each has."""
    scope = scope_filter(user)
    counts = (
        select(Response.service_id, func.count().label("n"), func.max(Response.submitted_at).label("last"))
        .join(Service, Service.id == Response.service_id)
        .where(scope)
        .group_by(Response.service_id)
        .subquery()
    )
    query = (
        select(Service, func.coalesce(counts.c.n, 0), counts.c.last)
        .outerjoin(counts, counts.c.service_id == Service.id)
        .where(scope)
        .options(joinedload(Service.policy))
        .order_by(Service.name)
    )
    return [
        ServiceRow(s.slug, s.name, s.policy.name, s.is_open, n, last) for s, n, last in db.session.execute(query).all()
    ]
