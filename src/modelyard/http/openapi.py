"""The OpenAPI 3.1 document of the gateway's HTTP API, served at ``/openapi.json``.

The request schemas are generated from the same TypedDicts that validate requests (http/validation.py),
so the document cannot drift from what the gateway accepts. ``docs/openapi.json`` is this document,
kept in the repo; a test fails when they differ (regenerate with ``modelyard openapi > docs/openapi.json``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter

from modelyard import __version__
from modelyard.gateway.unvalidated import REASON_HEADER, VALIDATION_HEADER
from modelyard.governance.keys import KeyLimits
from modelyard.http.admin import ADMIN_KEY_SCHEMA, NewKey, admin_paths
from modelyard.http.completions_api import CompletionRequest
from modelyard.http.console import console_paths
from modelyard.http.messages_api import MessagesRequest
from modelyard.http.rerank_api import RerankRequest
from modelyard.http.responses_api import ResponsesRequest
from modelyard.http.validation import ChatRequest, EmbeddingRequest

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "Invalid JSON, wrong types, unknown workload, or above a workload's cap (prompt_too_large,"
        " max_tokens_above_cap); for a query, a parameter that is not a number (param names it)",
        401: "Missing or invalid modelyard API key",
        403: "Refused by data-class policy, or an unpriced model under a USD budget (budget_unpriced_model)",
        404: "Unknown model",
        413: "Body too large",
        429: "A budget of this gateway (budget_exceeded, with a budget object saying which and when it resets),"
        " its rate limit (rate_limit_exceeded), or the upstream's rate limit; Retry-After says when to retry",
        502: "Upstream failed",
        503: "Upstream unavailable",
        504: "Upstream timed out",
    }
    return {
        str(s): {
            "description": meaning[s],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            **({"headers": _RETRY_AFTER} if s == 429 else {}),
        }
        for s in statuses
    }


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the budget's window resets or the rate limit's minute ends",
        "schema": {"type": "integer", "minimum": 1},
    }
}


#: The mark of an answer returned although it failed validation (gateway/unvalidated.py).
_VALIDATION_HEADERS = {
    VALIDATION_HEADER: {
        "description": "'failed' when the answer failed its validation (a requested json_schema, or the"
        " route's validators) after every retry and fallback and is returned anyway; the body then has"
        " modelyard.validation {status, reason}; finish_reason stays the model's. Absent otherwise.",
        "schema": {"type": "string", "enum": ["failed"]},
    },
    REASON_HEADER: {
        "description": "Why the returned answer failed validation (first violation, at most 200 characters)",
        "schema": {"type": "string"},
    },
}


#: One event of a text/event-stream answer: in OpenAPI 3.1 (as ``itemSchema`` in 3.2) the schema of an
#: event stream describes each event, with its fields as the SSE standard names them, not the whole text.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "Absent for Chat and Completions chunks"},
        "data": {"type": "string", "description": "One JSON object, or [DONE] at the end of Chat chunks"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


_WORKLOAD = {
    "name": "X-Modelyard-Workload",
    "in": "header",
    "required": False,
    "description": "The workload this call belongs to (or body metadata.workload; else the configured default).",
    "schema": {"type": "string"},
}


@cache
def openapi_document() -> dict[str, Any]:
    upstream_errors = _errors(400, 401, 403, 404, 413, 429, 502, 503, 504)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelyard gateway",
            "version": __version__,
            "description": "OpenAI-compatible gateway: every call metered in the ledger.",
        },
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "summary": "Create a chat completion (JSON, or SSE when stream is true)",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "chat.completion object, or a text/event-stream of chunks ending in [DONE]",
                            "headers": _VALIDATION_HEADERS,
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": _SSE_EVENT},
                            },
                        },
                        **upstream_errors,
                    },
                }
            },
            "/v1/responses": {
                "post": {
                    "summary": "Create a response (OpenAI's Responses API), served by every provider kind through"
                    " Chat Completions: text and multi-turn input, instructions, function tools and their"
                    " outputs, text.format structured output, usage; SSE with the Responses event types when"
                    " stream is true. Metered under endpoint 'responses'. previous_response_id, conversation,"
                    " background and built-in tools are refused (400): the gateway stores no responses.",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ResponsesRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "response object, or a text/event-stream of response.* events ending"
                            " in response.completed (response.incomplete at the token limit, response.failed"
                            " after an upstream failure mid-stream)",
                            "headers": _VALIDATION_HEADERS,
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": _SSE_EVENT},
                            },
                        },
                        **upstream_errors,
                    },
                }
            },
            "/v1/completions": {
                "post": {
                    "summary": "Legacy text completion, forwarded as it is to openai and openai_compatible providers"
                    " (400 unsupported_endpoint for other kinds); SSE when stream is true, always ending with a"
                    " usage-only chunk. Metered under endpoint 'completions'.",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/CompletionRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "text_completion object, or a text/event-stream of them ending in [DONE]",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": _SSE_EVENT},
                            },
                        },
                        **upstream_errors,
                    },
                }
            },
            "/v1/messages": {
                "post": {
                    "summary": "Create a message in Anthropic's Messages format (the Anthropic SDK, Claude Code),"
                    " forwarded as it came to Anthropic targets (cache_control, thinking and server tools"
                    " reach Anthropic; cache reads and writes priced), served by every other provider kind"
                    " through Chat Completions: system, text and image blocks,"
                    " tools with tool_use / tool_result, tool_choice, stop_sequences; SSE with Anthropic's"
                    " events when stream is true. The key may come as x-api-key or Authorization: Bearer."
                    " Errors in Anthropic's shape ({type: error, error: {type, message}}). Metered under"
                    " endpoint 'messages'.",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/MessagesRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "message object, or a text/event-stream from message_start to"
                            " message_stop (an error event instead when the upstream broke mid-stream)",
                            "headers": _VALIDATION_HEADERS,
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": _SSE_EVENT},
                            },
                        },
                        **upstream_errors,
                    },
                }
            },
            "/v1/rerank": {
                "post": {
                    "summary": "Rerank documents against a query (Cohere/Jina-style request and answer): kind:"
                    " rerank models on openai_compatible providers (vLLM, TEI, Infinity: forwarded) or on the"
                    " cohere, jina and voyage rerank APIs (translated); PII masking applies to the query and"
                    " documents. Metered under endpoint 'rerank': the upstream's token count (estimated and"
                    " flagged when it reports none) and, for Cohere, its search units (the answer's"
                    " usage.search_units: meta.billed_units, else estimated by Cohere's rule); priced per token"
                    " or per 1,000 search units when the catalog knows the model, else unpriced.",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RerankRequest"}}
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "results: [{index, relevance_score, document?: {text}}] best first;"
                            " usage (tokens) or, from Cohere, meta.billed_units",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **upstream_errors,
                    },
                }
            },
            "/v1/embeddings": {
                "post": {
                    "summary": "Create embeddings",
                    "parameters": [_WORKLOAD],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}
                        },
                    },
                    "responses": {
                        "200": {"description": "list of embeddings", "content": {"application/json": {}}},
                        **upstream_errors,
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "List the models this gateway serves",
                    "responses": {
                        "200": {"description": "list of models", "content": {"application/json": {}}},
                        **_errors(401),
                    },
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One model or route by its public name (ids may contain slashes), with the kind"
                    " it is served as: the config's kind, else the price catalog's (embedding models bill no"
                    " output), else chat",
                    "parameters": [
                        {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "model object", "content": {"application/json": {}}},
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "summary": "The calling tenant's own requests, tokens, cost and latency per workload and model; with a"
                    " governance section, its budgets in their current window (budgets: limit, spent, reserved,"
                    " remaining, resets_at)",
                    "parameters": [
                        {
                            "name": "since",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number"},
                            "description": "Unix seconds; default: everything",
                        },
                    ],
                    "responses": {
                        "200": {"description": "usage groups", "content": {"application/json": {}}},
                        **_errors(400, 401),
                        "503": {
                            "description": "The ledger's database cannot be read right now",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                            },
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics: requests, tokens, spend, latency, circuit-breaker states",
                    "responses": {
                        "200": {"description": "Prometheus text exposition format"},
                        **_errors(401),
                    },
                }
            },
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}},
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}},
            },
            **admin_paths(),
            **console_paths(),
        },
        "components": {
            "schemas": {
                "Error": _ERROR,
                **_schemas(
                    ChatRequest=ChatRequest,
                    EmbeddingRequest=EmbeddingRequest,
                    ResponsesRequest=ResponsesRequest,
                    CompletionRequest=CompletionRequest,
                    MessagesRequest=MessagesRequest,
                    RerankRequest=RerankRequest,
                ),
                **_schemas(NewKey=NewKey, KeyLimits=KeyLimits),
                "AdminKey": ADMIN_KEY_SCHEMA,
            }
        },
    }


def _schemas(**kinds: Any) -> dict[str, Any]:
    """JSON Schemas of the request types, with their nested definitions hoisted into components."""
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        schema: dict[str, Any] = TypeAdapter(kind).json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    converted: dict[str, Any] = _any_of(out)
    return converted


def _any_of(schema: Any) -> Any:
    """``oneOf`` as ``anyOf``: a union picked by ``type`` (request_shapes.by_type) ends in a catch-all
    member that a known part matches too, so "exactly one" would call valid requests invalid."""
    if isinstance(schema, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_any_of(v) for v in schema]
    return schema
