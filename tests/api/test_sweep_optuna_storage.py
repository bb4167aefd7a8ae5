"""Optuna's studies on the platform's PostgreSQL (the real test database): in their own
``optuna`` schema, so Optuna's ``alembic_version`` is not the app's, the app's migrations and
autogenerate see exactly their own tables, and one sweep's study going leaves the others'."""

from __future__ import annotations

import secrets
from pathlib import Path

import optuna
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import api.models  # noqa: F401
from api.db import alembic_config, make_engine
from api.services.sweeps import OPTUNA_SCHEMA, optuna_storage
from tests.api.conftest import settings_for

OPTUNA_TABLES = {"studies", "trials", "trial_params", "trial_values", "version_info"}


def _study(url: str, name: str, n: int) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.optimize(lambda t: -((t.suggest_int("fast.window", 2, 40) - 10) ** 2), n_trials=n)
    return study


def test_optuna_studies_live_in_their_own_schema_of_the_platforms_database(
    pg_url: str, tmp_path: Path
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = optuna_storage(settings_for(pg_url, tmp_path))
    assert url is not None and "search_path" in url
    key = secrets.token_hex(4)
    _study(url, f"{key}-a", 3)  # the app's alembic_version in its way: RuntimeError here
    _study(url, f"{key}-b", 2)
    engine = make_engine(pg_url)
    try:
        tables = inspect(engine)
        assert set(tables.get_table_names(schema=OPTUNA_SCHEMA)) >= OPTUNA_TABLES
        assert not OPTUNA_TABLES & set(tables.get_table_names())  # the app's schema: its own
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []  # autogenerate drops none
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert context.get_current_revision() == head
        # emptying every app table (an operator's reset; the tests' own fixture) spares them
        app_tables = [t for t in tables.get_table_names() if t != "alembic_version"]
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(app_tables)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    assert len(optuna.load_study(study_name=f"{key}-a", storage=url).trials) == 3
    # one sweep's study removed: the other sweep's study and its trials are whole
    optuna.delete_study(study_name=f"{key}-a", storage=url)
    other = optuna.load_study(study_name=f"{key}-b", storage=url)
    assert len(other.trials) == 2 and other.best_value <= 0
    names = {s.study_name for s in optuna.get_all_study_summaries(storage=url)}
    assert f"{key}-b" in names and f"{key}-a" not in names


def test_sqlite_platforms_keep_the_sweeps_default_storage(tmp_path: Path) -> None:
    assert optuna_storage(settings_for(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)) is None


def test_the_schema_joins_options_the_operator_set(tmp_path: Path) -> None:
    url = "postgresql+psycopg://af:s%40cret@db:5432/af?options=-cstatement_timeout%3D5000"
    storage = optuna_storage(settings_for(url, tmp_path))
    assert storage is not None and "af:s%40cret@db:5432/af" in storage
    from sqlalchemy.engine import make_url

    options = make_url(storage).query["options"]
    assert options == f"-cstatement_timeout=5000 -csearch_path={OPTUNA_SCHEMA}"


def test_a_password_never_travels_in_the_sweeps_spec(tmp_path: Path) -> None:
    from api.services.sweeps import OPTUNA_STORAGE_ENV, optuna_storage_ref

    secret = "postgresql+psycopg://af:s%40cret@db:5432/af"
    assert optuna_storage_ref(settings_for(secret, tmp_path)) == f"env:{OPTUNA_STORAGE_ENV}"
    trusted = "postgresql+psycopg://root@/test"
    ref = optuna_storage_ref(settings_for(trusted, tmp_path))
    assert ref == optuna_storage(settings_for(trusted, tmp_path)) and ref and "search_path" in ref
    assert optuna_storage_ref(settings_for(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)) is None
