"""The study store: tables, engine and migrations; the only place that knows the schema."""

from study_app.store.engine import default_db_url, make_engine, make_sessionmaker
from study_app.store.migrate import current_revision, head_revision, upgrade
from study_app.store.models import Base

__all__ = [
    "Base",
    "current_revision",
    "default_db_url",
    "head_revision",
    "make_engine",
    "make_sessionmaker",
    "upgrade",
]
