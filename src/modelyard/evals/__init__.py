"""The eval harness: prove a cheaper or self-hosted model is good enough before a workload moves.

Data flow, one module each::

    golden.py / importers.py   a golden set (JSONL) → GoldenSet
    evaluators.py, model_evaluators.py, checks.py   each case's checks → evaluator objects
    runner.py (calls.py, cache.py)   cases × candidates through the gateway's adapters, cached in SQLite
    stats.py                   paired bootstrap + exact McNemar → the regression gate's verdict
    results.py, report.py      summaries, the JSON record under .modelyard/evals/, terminal and HTML

The CLI is ``modelyard eval`` (cli/eval.py); the record's shape is documented in docs/evals.md.
"""
