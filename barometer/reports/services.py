"""Queries behind the service manager's pages."""

from dataclasses import dataclass

from sqlalchemy import func, select

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


def services_in_scope(user: User) -> list[ServiceRow]:
    """The services a user may see, with how many responses each has."""
    counts = (
        select(Response.service_id, func.count().label("n"), func.max(Response.submitted_at).label("last"))
        .group_by(Response.service_id)
        .subquery()
    )
    query = (
        select(Service, func.coalesce(counts.c.n, 0), counts.c.last)
        .outerjoin(counts, counts.c.service_id == Service.id)
        .order_by(Service.name)
    )
    if user.role == Role.manager:
        query = query.where(Service.id.in_([s.id for s in user.services]))
    elif user.organisation_id is not None:
        query = query.where(Service.organisation_id == user.organisation_id)
    return [
        ServiceRow(s.slug, s.name, s.policy.name, s.is_open, n, last) for s, n, last in db.session.execute(query).all()
    ]
