"""Connecting: the people provider's "connection" is the CMDB catalog of the run's Environment.

Invariants: the catalog is loaded once per run (lazily, by the registered factory) from the
Environment's `spec.cmdb.backstage` paths and never changed afterwards; an Environment
without a CMDB cannot run people actions (`NoCatalog` says how to add one).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from orchestrator import registry
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb
from orchestrator.providers.people import errors
from scenarios import models

PROVIDER: Final = "people"


@dataclasses.dataclass(frozen=True)
class PeopleConnection:
    """Who is who for one run: the catalog (people, teams, rotations, services)."""

    catalog: cmdb.Catalog


def connect(environment: models.Environment) -> PeopleConnection:
    """Load the Environment's CMDB; `NoCatalog` if it names none."""
    source = environment.spec.cmdb
    if source is None:
        raise errors.NoCatalog(
            f"environment {environment.metadata.name!r} has no spec.cmdb: the people provider "
            "needs the CMDB (Backstage Group/User files and the OnCall file) to know who is "
            "who; add 'cmdb: {backstage: [path/to/catalog]}' to the Environment"
        )
    return PeopleConnection(catalog=backstage.load_catalog(list(source.backstage)))


def of(ctx: registry.ProviderContext) -> PeopleConnection:
    """The run's people connection."""
    conn = ctx.connection(PROVIDER)
    if not isinstance(conn, PeopleConnection):
        raise errors.PeopleError(
            f"the {PROVIDER!r} connection is a {type(conn).__name__}, not a PeopleConnection"
        )
    return conn
