"""Read promptfoo's YAML (and JSON) the way promptfoo does, so strings stay strings.

PyYAML implements YAML 1.1, where ``Yes``, ``No``, ``on``, ``off``, ``y`` and ``n`` are booleans, ``12:30``
is a base-60 number, ``2024-01-01`` a date and ``0777`` an octal number: a var ``body: Yes`` would reach the
prompt as "True". promptfoo reads its files with js-yaml's YAML 1.2 core schema, where only ``true`` and
``false`` are booleans. :class:`Yaml12Loader` is PyYAML's safe loader with the YAML 1.2 core schema's
resolvers instead of 1.1's: null (``~``, ``null``, empty), booleans (``true``/``false`` in three cases),
integers (decimal, ``0o`` octal, ``0x`` hex) and floats; everything else is a string. Timestamps are not
resolved either (js-yaml would make a ``Date`` whose text no prompt wants): ``2024-01-01`` stays text.

The node tree is kept: its marks give the line numbers every import problem cites. ``$ref`` entries that
point inside the same document (``{$ref: '#/assertionTemplates/polite'}``, JSON Pointer) are replaced by
what they point at, as promptfoo does.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from modelyard.evals.golden import GoldenSetError


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader resolving plain scalars by the YAML 1.2 core schema (see the module doc)."""


# Start from no implicit resolvers (add_implicit_resolver copies the parent's table otherwise).
Yaml12Loader.yaml_implicit_resolvers = {}
#: (tag, pattern, the first characters it can start with; "" is the empty scalar).
_CORE: list[tuple[str, str, list[str]]] = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
]
for _tag, _pattern, _first in _CORE:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # YAML 1.2: a leading zero is decimal, not octal


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def read_text(path: Path) -> str:
    """The file as text; a clear error (not a traceback) when it is missing or not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GoldenSetError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GoldenSetError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document (``$ref`` resolved) and its node tree."""
    loader = Yaml12Loader(read_text(path))
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise GoldenSetError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return resolve_refs(data), root


def resolve_refs(data: Any) -> Any:
    """``data`` with every ``{"$ref": "#/a/b"}`` replaced by a copy of what it points at; a reference that
    cannot be resolved stays, with ``$ref_error`` saying why."""

    def walk(value: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str) and len(value) == 1:
                if ref in seen:
                    return {"$ref": ref, "$ref_error": f"$ref {ref!r} refers to itself"}
                try:
                    target = _pointer(data, ref)
                except LookupError as exc:
                    # Kept in place: the importer reports it with the other problems, at its line.
                    return {"$ref": ref, "$ref_error": str(exc)}
                return walk(copy.deepcopy(target), (*seen, ref))
            return {k: walk(v, seen) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, seen) for v in value]
        return value

    return walk(data, ())


def _pointer(document: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise LookupError(f"$ref {ref!r}: only references inside the file ('#/...') are supported")
    target = document
    for raw in ref[2:].split("/"):
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and step in target:
            target = target[step]
        elif isinstance(target, list) and step.isdigit() and int(step) < len(target):
            target = target[int(step)]
        else:
            raise LookupError(f"$ref {ref!r}: nothing at {step!r}")
    return target


def node_line(root: yaml.Node | None, where: str) -> int:
    """The 1-based line of the node at field path ``where`` (e.g. ``tests[2].assert[0].type``), or of its
    nearest existing parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", where):
        child = None
        if isinstance(node, yaml.SequenceNode) and step.startswith("["):
            position = int(step[1:-1])
            child = node.value[position] if position < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
