"""Read a YAML config file into a validated :class:`Config`, or fail with a message that says what to fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelyard.config.schema import Config
from modelyard.errors import ConfigError


def load_config(path: str | Path) -> Config:
    """Load and validate ``path``. Raises :class:`ConfigError` naming the file, field path and fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'providers' and 'models' at the top level")
    config = parse_config(raw, source=str(path))
    return _resolve_relative_paths(config, path.parent)


def parse_config(raw: dict[str, Any], *, source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<field.path>: <what is wrong>``."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the configuration:"]
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (remove it or check its spelling)"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"  {path or '(top level)'}: {message}")
    return "\n".join(lines)


def _resolve_relative_paths(config: Config, base: Path) -> Config:
    """Relative paths in the config are relative to the config file, not the working directory."""
    ledger = config.ledger
    if ledger.url.startswith("sqlite:///"):
        db = ledger.url.removeprefix("sqlite:///")
        if db != ":memory:" and not os.path.isabs(db):
            ledger = ledger.model_copy(update={"url": f"sqlite:///{(base / db).resolve()}"})
    if ledger.spool_dir is not None and not os.path.isabs(ledger.spool_dir):
        ledger = ledger.model_copy(update={"spool_dir": str((base / ledger.spool_dir).resolve())})
    files = tuple(
        str((base / f).resolve()) if not os.path.isabs(f) else f for f in config.catalog.price_files
    )
    catalog = config.catalog.model_copy(update={"price_files": files})
    return config.model_copy(update={"ledger": ledger, "catalog": catalog})


def missing_credentials(config: Config) -> list[str]:
    """Providers whose ``api_key_env`` is unset in the environment, as readable lines."""
    return [
        f"providers.{name}: environment variable {p.api_key_env} is not set"
        for name, p in config.providers.items()
        if p.api_key_env and not os.environ.get(p.api_key_env)
    ]
