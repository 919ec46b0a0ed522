"""promptfoo's prompts rendered into chat messages: its Nunjucks templates through Jinja2 (the syntax they
share), in a sandbox, with vars written as promptfoo writes them (an object or list as JSON, ``1.0`` as
"1"), and an unset variable rendered empty, as promptfoo does (noted in the import's summary)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jinja2
import orjson
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from modelyard.evals.promptfoo_asserts import Problem
from modelyard.evals.promptfoo_sources import Prompt


class _JsonDict(dict[str, Any]):
    """A var holding an object: ``{{ obj.key }}`` reads it, ``{{ obj }}`` writes it as JSON."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


class _JsonList(list[Any]):
    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


def _template_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _JsonDict({k: _template_value(v) for k, v in value.items()})
    if isinstance(value, list):
        return _JsonList(_template_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # as JavaScript writes it: 1.0 is "1"
    return value


_ENV = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.filters["dump"] = lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False)


@lru_cache(maxsize=512)
def _template(text: str) -> tuple[jinja2.Template, frozenset[str]]:
    return _ENV.from_string(text), frozenset(meta.find_undeclared_variables(_ENV.parse(text)))


def render_at(variables: dict[str, Any], text: str, where: str) -> str:
    """:func:`render` with the variables first, for an assertion's value (``functools.partial``)."""
    return render(text, variables, where)


def render(text: str, variables: dict[str, Any], where: str, notes: list[str] | None = None) -> str:
    """Render a Nunjucks/Jinja template; an unset variable renders empty, as in promptfoo (noted)."""
    try:
        template, names = _template(text)
        missing = sorted(names - set(variables))
        if missing and notes is not None:
            notes.append(f"{where}: {', '.join(missing)} not set: rendered empty, as promptfoo does")
        return str(template.render(**{k: _template_value(v) for k, v in variables.items()}))
    except jinja2.TemplateError as exc:
        raise Problem(where, f"template: {exc}") from None


def chat_messages(
    prompt: Prompt, options: dict[str, Any], variables: dict[str, Any], where: str, notes: list[str]
) -> list[dict[str, Any]]:
    """A chat template (a JSON list of messages) renders message by message; any other text is one user
    message. ``options.prefix``/``suffix`` wrap the text prompt (or the last user message)."""
    prefix, suffix = str(options.get("prefix") or ""), str(options.get("suffix") or "")
    try:
        chat = orjson.loads(prompt.text) if prompt.text.lstrip().startswith("[") else None
    except orjson.JSONDecodeError:
        chat = None
    if isinstance(chat, list) and chat and all(isinstance(m, dict) and "role" in m for m in chat):
        last_user = max((i for i, m in enumerate(chat) if m.get("role") == "user"), default=-1)
        out = []
        for i, message in enumerate(chat):
            content = message.get("content")
            if isinstance(content, str):
                text = render(content, variables, where, notes)
                message = {**message, "content": prefix + text + suffix if i == last_user else text}
            out.append(message)
        return out
    return [{"role": "user", "content": prefix + render(prompt.text, variables, where, notes) + suffix}]
