"""The admin API over runtime keys (``/admin/keys``): create (the key is answered once), list, revoke,
rotate, set limits — what ``modelyard keys`` does, for a platform team's tooling.

It needs a ``governance:`` section with ``admin_key_env`` naming the environment variable that holds the
admin key; the key is read once at start-up and compared in constant time. Client keys never open it.

| method and path | does |
|---|---|
| ``GET /admin/keys[?all=1]`` | the keys (never the secrets); ``all=1`` includes revoked ones |
| ``POST /admin/keys`` | create: ``{"id", "tenant", "workloads", "data_class", "limits"}`` → 201 with ``key`` |
| ``POST /admin/keys/{id}/revoke`` | revoke: the key stops working within ``key_cache_ttl_s`` |
| ``POST /admin/keys/{id}/rotate`` | a new secret for the same id, tenant and limits → ``key`` |
| ``PUT /admin/keys/{id}/limits`` | replace the key's limits (``KeyLimits``) |
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Literal, TypeVar

import orjson
from pydantic import Field, ValidationError

from modelyard.config.routing import DataClass
from modelyard.config.schema import Config
from modelyard.config.strict import Strict
from modelyard.errors import AuthenticationFailed, InvalidRequest, ModelyardError, NotFound
from modelyard.governance.keys import KeyLimits, KeyRecord, KeyStore, UnknownKey
from modelyard.transport.server import Request, Response

PREFIX = "/admin/keys"


class NewKey(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")
    tenant: str = Field(min_length=1, max_length=200)
    workloads: tuple[str, ...] = ()
    data_class: DataClass | None = None
    limits: KeyLimits = KeyLimits()


def record_json(record: KeyRecord) -> dict[str, Any]:
    return record.to_json()


class Conflict(ModelyardError):
    status = 409
    type = "invalid_request_error"
    code = "key_exists"


class Admin:
    """The ``/admin/keys`` routes of one gateway; answers 404 everywhere when no admin key is configured."""

    def __init__(self, config: Config, store: KeyStore | None) -> None:
        env = config.governance.admin_key_env if config.governance else None
        secret = os.environ.get(env) if env else None
        self._secret = secret.encode() if secret else None
        self._store = store
        self._workloads = frozenset(config.workloads)

    @property
    def enabled(self) -> bool:
        return self._secret is not None and self._store is not None

    def handle(self, request: Request) -> Response:
        try:
            self.authorize(request)
            return self._route(request)
        except ModelyardError as error:
            return Response(orjson.dumps(error.to_body()), status=error.status)

    def authorize(self, request: Request) -> None:
        """Raise unless the admin API is configured and the request carries its key (the console too)."""
        if not self.enabled:
            raise NotFound(
                "no admin API here: set governance.admin_key_env to an environment variable holding the"
                " admin key, and start the gateway with it set",
                code="unknown_url",
            )
        assert self._secret is not None
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._secret):
            raise AuthenticationFailed("the admin API needs 'Authorization: Bearer <admin key>'")

    def _route(self, request: Request) -> Response:
        assert self._store is not None
        store, path, method = self._store, request.path.rstrip("/"), request.method
        if path == PREFIX:
            if method == "GET":
                every = request.query.get("all") in ("1", "true")
                keys = [record_json(r) for r in store.list_keys(include_revoked=every)]
                return Response(orjson.dumps({"object": "list", "data": keys}))
            if method == "POST":
                return self._create(store, request)
            raise _method(method, path, "GET, POST")
        key_id, _, action = path.removeprefix(PREFIX + "/").partition("/")
        expected: dict[str, Literal["POST", "PUT"]] = {"revoke": "POST", "rotate": "POST", "limits": "PUT"}
        if not key_id or action not in expected:
            raise NotFound(f"unknown admin path {request.path}", code="unknown_url")
        if method != expected[action]:
            raise _method(method, path, expected[action])
        try:
            if action == "revoke":
                return Response(orjson.dumps(record_json(store.revoke(key_id))))
            if action == "rotate":
                record, key = store.rotate(key_id)
                return Response(orjson.dumps({**record_json(record), "key": key}))
            limits = _parse(KeyLimits, request.body)
            return Response(orjson.dumps(record_json(store.set_limits(key_id, limits))))
        except UnknownKey as exc:
            raise NotFound(str(exc), code="unknown_key") from None

    def _create(self, store: KeyStore, request: Request) -> Response:
        new = _parse(NewKey, request.body)
        unknown = sorted(set(new.workloads) - self._workloads)
        if unknown:
            raise InvalidRequest(
                f"workloads: unknown {unknown}; allowed: {', '.join(sorted(self._workloads)) or '(none)'}",
                param="workloads",
            )
        try:
            record, key = store.create(
                new.id, new.tenant, workloads=new.workloads, data_class=new.data_class, limits=new.limits
            )
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        # The key itself is in this answer only: nothing stores it.
        return Response(orjson.dumps({**record_json(record), "key": key}), status=201)


Body = TypeVar("Body", NewKey, KeyLimits)


def _parse(model: type[Body], body: bytes) -> Body:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors)
        # param names the first field at fault, as OpenAI's errors do (None when the body itself is).
        raise InvalidRequest(problems, param=".".join(map(str, errors[0]["loc"])) or None) from None


def _method(method: str, path: str, allowed: str) -> ModelyardError:
    error = InvalidRequest(
        f"method {method} is not allowed on {path}; use {allowed}", code="method_not_allowed"
    )
    error.status = 405
    return error


def admin_paths() -> dict[str, Any]:
    """The OpenAPI paths of the admin API (merged into the document by :mod:`modelyard.http.openapi`)."""

    def answer(description: str, status: str = "200", schema: str = "AdminKey") -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {status: {"description": description, "content": {"application/json": {"schema": ref}}}}

    errors = {
        str(status): {
            "description": meaning,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, meaning in (
            (400, "A body that does not validate (the message names the field), or an unknown workload"),
            (401, "Missing or wrong admin key (Authorization: Bearer <the key in governance.admin_key_env>)"),
            (404, "Unknown key id; or no admin API configured (governance.admin_key_env unset or empty)"),
        )
    }
    key_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

    def body(schema: str) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {"required": True, "content": {"application/json": {"schema": ref}}}

    return {
        PREFIX: {
            "get": {
                "summary": "Admin: the runtime keys (never their secrets); ?all=1 includes revoked ones",
                "parameters": [
                    {"name": "all", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "{object: list, data: [AdminKey]}"}, **errors},
            },
            "post": {
                "summary": "Admin: create a key; the answer's `key` is the only time the secret is shown",
                "requestBody": body("NewKey"),
                "responses": {
                    **answer("The key's record and `key`", "201"),
                    "409": {"description": "A key with this id exists: rotate it or pick another id"},
                    **errors,
                },
            },
        },
        PREFIX + "/{id}/revoke": {
            "post": {
                "summary": "Admin: revoke a key; it stops working on every replica within key_cache_ttl_s",
                "parameters": [key_id],
                "responses": {**answer("The revoked key's record"), **errors},
            }
        },
        PREFIX + "/{id}/rotate": {
            "post": {
                "summary": "Admin: a new secret (in `key`) for the same id, tenant and limits; the old one stops",
                "parameters": [key_id],
                "responses": {**answer("The key's record and its new `key`"), **errors},
            }
        },
        PREFIX + "/{id}/limits": {
            "put": {
                "summary": "Admin: replace the key's own limits (USD and tokens per day/month, per-minute rates)",
                "parameters": [key_id],
                "requestBody": body("KeyLimits"),
                "responses": {**answer("The key's record"), **errors},
            }
        },
    }


#: The record the admin API answers with (``record_json``).
ADMIN_KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "tenant": {"type": "string"},
        "workloads": {"type": "array", "items": {"type": "string"}},
        "data_class": {"type": ["string", "null"]},
        "limits": {"$ref": "#/components/schemas/KeyLimits"},
        "created_at": {"type": "number"},
        "revoked_at": {"type": ["number", "null"]},
        "active": {"type": "boolean"},
        "key": {"type": "string", "description": "Only when created or rotated"},
    },
}
