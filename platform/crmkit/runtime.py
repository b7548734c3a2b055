"""The running engine: spec, database, tables, query builder, records service,
built once from a config and shared by the API, the CLI and the UI."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pluggy
import sqlalchemy as sa

from . import loading, migrations
from .audit import AuditTrail
from .database import create_engine
from .fieldtypes import FieldType, app_timezone
from .identity import Directory
from .jobs import Jobs
from .metadata.spec import AppSpec
from .permissions import Permissions
from .query import QueryBuilder
from .records import RecordsService
from .serialization import EntitySchemas
from .settings import Settings, from_environment
from .tables import Tables, build_tables


@dataclass
class Runtime:
    spec: AppSpec
    settings: Settings
    engine: sa.Engine
    tables: Tables
    field_types: Mapping[str, FieldType]
    schemas: Mapping[str, EntitySchemas]
    queries: QueryBuilder
    records: RecordsService
    pm: pluggy.PluginManager
    permissions: Permissions
    directory: Directory
    audit: AuditTrail
    #: The job queue (crmkit.jobs), made by build().
    jobs: Jobs = field(init=False)

    def plan(self) -> migrations.MigrationPlan:
        """What a migration would change (refused for another app's database)."""
        with self.engine.connect() as conn:
            return migrations.plan(conn, self.tables, self.spec.name)

    def migrate(self, *, allow_data_loss: bool = False) -> tuple[migrations.MigrationPlan, Path | None]:
        """Bring the database to the config, one process at a time; refuses
        (MigrationRefused) changes that lose data unless allowed."""
        migration, backup = migrations.migrate(
            self.engine, self.tables, self.spec.name, allow_data_loss=allow_data_loss,
            backup_dir=self.settings.backup_dir, database_file=self.settings.sqlite_file)
        if not migration.empty:
            self.analyze()
        return migration, backup

    def check_database(self) -> None:
        """Refuse (MigrationRefused) a database that belongs to another app."""
        with self.engine.connect() as conn:
            migrations.check_owner(conn, self.spec.name)

    def analyze(self) -> None:
        """Fresh planner statistics (after a migration or a bulk load)."""
        from .database import analyze

        analyze(self.engine, list(self.tables.metadata.tables))


def build(config_dir: str | Path, settings: Settings | None = None) -> Runtime:
    spec, pm, types = loading.load_config(config_dir)
    settings = (settings or from_environment()).for_app(spec.name)
    assert settings.database_url is not None
    engine = create_engine(settings.database_url)
    tz = app_timezone(spec.timezone)
    tables = build_tables(spec, types, pm)
    schemas = {name: EntitySchemas(entity, types, tz) for name, entity in spec.entities.items()}
    permissions = Permissions(spec, types)
    queries = QueryBuilder(spec, tables, types, tz, engine.dialect.name, permissions)
    audit = AuditTrail(engine, tables.audit)
    records = RecordsService(spec, engine, tables, queries, schemas, types, pm, tz, audit)
    directory = Directory(engine, tables, permissions, queries.scopes, audit)
    rt = Runtime(spec, settings, engine, tables, types, schemas, queries, records, pm, permissions, directory, audit)
    for module in settings.jobs_import:  # modules whose tasks this app runs (besides the plugins')
        importlib.import_module(module)
    rt.jobs = records.jobs = Jobs(rt)
    return rt
