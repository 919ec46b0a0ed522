"""Renderers of a :class:`~modelyard.economics.engine.Decision`: terminal (rich), JSON, self-contained HTML."""
