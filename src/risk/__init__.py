"""Project risk assessment and buffer stress testing: reads the ledger and its read models.

- :mod:`risk.errors`: the risk errors, members of the ledger's ``LedgerError`` family.
- :mod:`risk.assessment`: the risk tool (data in ``risk_tools/``) and buffer methods.
- :mod:`risk.service`: the assessment use case, and the stress-test record's reads and writes.
- :mod:`risk.record`: the ``StressTest`` aggregate, one per pool, one event per run.
- :mod:`risk.choices`: the stress test's choices as enums (light: no numpy).
- :mod:`risk.spec`: ``StressSpec``, the one pydantic spec the CLI and HTTP validate into.
- :mod:`risk.pool_contents`: the pool's inputs, read from the read models.
- :mod:`risk.stress_test`: the use case (run, record), written once for every face.
- :mod:`risk.engine`: the Monte Carlo engine, one module per model (no plotting; charts
  are in :mod:`projections.charts`).
"""
