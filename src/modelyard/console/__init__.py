"""The browser console (issue 18): what ``/console`` shows, gathered outside the HTTP layer.

- :mod:`.panels`: the figures of each panel: the ledger's series (``ledger/series.py``, in SQL), the latest
  ``decide`` run's triggers and recommendations, runtime keys and budgets in their current windows;
- :mod:`.assets`: the page, its script and stylesheet, and the vendored charting library (uPlot, MIT),
  read from the package: the page makes no request beyond the gateway that serves it.

``http/console.py`` routes to them behind the admin key.
"""
