"""Governance: budgets (USD, tokens, requests) by reservation, rate limits, alerts and runtime API keys.

Standalone engine: the gateway reserves at admission and settles when the outcome is known (see
docs/governance.md for the wiring). Modules: ``config`` (the YAML section), ``model`` (types and the 429
errors), ``windows`` and ``budgets`` (pure), ``estimate`` (the reservation bound), ``store*`` (memory,
SQLite, PostgreSQL, Redis), ``governor`` (the engine), ``ratelimit``, ``alerts``, ``keys``.
"""
