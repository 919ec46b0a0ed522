"""The decision engine: workload profiles from traffic, capacity, TCO, break-even, portfolio, scorecard
and migration triggers. Pure functions over typed inputs; I/O lives in ``traffic`` and the CLI.

One ``decide`` run: org profile (:mod:`.org`) + traffic (:mod:`.traffic`) → workload profiles
(:mod:`.workload`) → options per workload (:mod:`.options`, :mod:`.capacity`) → monthly TCO (:mod:`.tco`)
→ break-even and sensitivity (:mod:`.breakeven`) → portfolio (:mod:`.portfolio`) → scorecard and
triggers (:mod:`.scorecard`, :mod:`.triggers`), assembled by :func:`.engine.decide`.
"""
