"""Alembic environment: runs migrations on the engine handed over by study_app.store.migrate.

On SQLite, a migration that changes a constraint rebuilds the table (batch mode: copy, drop the old, rename the
new); with foreign keys enforced, dropping a table other rows refer to fails even though the rebuilt table takes
its name a statement later. So, as SQLite's own procedure for such changes says (sqlite.org/lang_altertable.html,
"Making Other Kinds Of Table Schema Changes"), enforcement is off while the migrations run, the whole database is
checked with ``PRAGMA foreign_key_check`` before the commit (a violation rolls everything back), and enforcement
is on again before the connection goes back to the pool. The pragma has no effect inside a transaction, so it goes
straight to the driver's connection, before SQLAlchemy's first statement begins one (store/engine.py).
"""

from alembic import context

from study_app.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"a migration broke {len(broken)} foreign key(s), first: {broken[0]}; "
                                       "nothing was changed")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")
