"""Storage: the one place the ledger's database is shaped.

- :mod:`.base`: the one ``MetaData`` every table of ours is declared on (read models,
  scheduler, API tokens) and the column sizes, which come from :mod:`ledger.limits`;
- :mod:`.engines`: SQLAlchemy engines on SQLite and PostgreSQL;
- :mod:`.schema`: the schema lock, the read models' fingerprint and :func:`.schema.create_all`;
- ``migrations/``: the Alembic scripts of the tables a rebuild cannot recreate.

It lives beside the read models (``projections``) so that ``scheduler`` and ``permanence``
can both use it without an import running back up the layers.
"""
