"""The console's static files, served from the package (``console/static/``): nothing comes from a CDN,
so the console works on an air-gapped site exactly as anywhere else.

``uplot.iife.min.js`` and ``uplot.min.css`` are uPlot 1.6.32 (MIT, ``uplot.LICENSE`` beside them), copied
unchanged from ``npm pack uplot@1.6.32`` (``dist/``). To upgrade: ``npm pack uplot@<version>``, copy the
same two files and the LICENSE, and bump the version here and in the README.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

UPLOT_VERSION = "1.6.32"

#: File name → content type: the only files the console serves (no path is ever read from a request).
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "uplot.iife.min.js": "text/javascript; charset=utf-8",
    "uplot.min.css": "text/css; charset=utf-8",
    "uplot.LICENSE": "text/plain; charset=utf-8",
}


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of the console's files; None for any other name."""
    content_type = _TYPES.get(name)
    if content_type is None:
        return None
    return files("modelyard.console").joinpath("static", name).read_bytes(), content_type
