"""The eval harness: prove a cheaper or self-hosted model is good enough before a workload moves.

Data flow, one module each::

    golden.py                  a golden set (JSONL) → GoldenSet
    importers.py, promptfoo*.py  other sources → golden cases (OpenAI evals, the ledger, promptfoo suites:
                               promptfoo_yaml.py reads, promptfoo_sources.py follows file://,
                               promptfoo_cases.py builds a test's cases, promptfoo_render.py renders
                               prompts, promptfoo_asserts.py maps assertions, promptfoo.py assembles)
    preflight.py               everything a run needs, checked before its first paid call
    evaluators.py, model_evaluators.py, checks.py   each case's checks → evaluator objects
    runner.py (calls.py, cache.py)   cases × candidates through the gateway's adapters, cached in SQLite
    interrupt.py               SIGTERM/SIGINT stop a run cleanly (answers are durable as they arrive)
    dispatch.py                every model call (candidates and judges): concurrency, provider rates, retries
    stats.py                   paired bootstrap + exact McNemar → the regression gate's verdict
    results.py, report.py      summaries, the JSON record under .modelyard/evals/, terminal and HTML
                               (economics/quality.py reads the record into ``modelyard decide``)

The CLI is ``modelyard eval`` (cli/eval.py); the record's shape is documented in docs/evals.md.
"""
