"""The endpoints served by translating to and from chat, or by forwarding as they came: OpenAI's Responses
API, legacy completions, rerank and Anthropic's Messages API. Each is admitted like chat (routing, policy,
redaction, budgets, metering) through :meth:`Api._admit <modelyard.http.app.Api._admit>`; this mixin keeps
them out of the core routes' module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from modelyard.config.schema import ModelKind
from modelyard.errors import InternalError, ModelyardError
from modelyard.gateway.admission import Refused, RequestPlan
from modelyard.gateway.metering import RequestContext
from modelyard.gateway.passthrough import Endpoint
from modelyard.gateway.pipeline import Gateway
from modelyard.http import (
    completions_api,
    messages_api,
    messages_passthrough,
    rerank_api,
    responses_passthrough,
)
from modelyard.http.answers import (
    anthropic_error,
    error_response,
    internal_error,
    json_answer,
    log,
    request_context,
    stream_headers,
    unvalidated,
)
from modelyard.http.completions_api import unservable
from modelyard.http.messages_stream import MessageEvents
from modelyard.http.meta import AUTHORIZATION
from modelyard.http.responses_api import from_chat, to_chat
from modelyard.http.responses_passthrough import passes_through
from modelyard.http.responses_stream import EventTranslator
from modelyard.http.translated_stream import TranslatedStream
from modelyard.http.validation import (
    check_completion_request,
    check_messages_request,
    check_rerank_request,
    check_responses_request,
)
from modelyard.transport.server import Request, Response, Streamed


class TranslatedRoutes:
    """Route handlers of :class:`~modelyard.http.app.Api` for the translated and forwarded endpoints."""

    gateway: Gateway

    def _admit(
        self, request: Request, ctx: RequestContext, check: Callable[[Any, bytes], None], kind: ModelKind
    ) -> RequestPlan:
        raise NotImplementedError  # Api's: authenticate, parse, validate, admit

    async def responses(self, request: Request) -> Response | Streamed:
        """OpenAI's Responses API, served as chat: translated before admission, the answer translated
        back (http/responses_api.py, http/responses_stream.py). Metered under endpoint ``responses``."""
        ctx = request_context("responses")
        gateway = self.gateway
        original: dict[str, Any] = {}
        admitted: list[dict[str, Any]] = []

        def check_and_translate(body: Any, raw: bytes) -> None:
            # Admission must see the chat body (routing, policy, redaction, budgets, the cache key): the
            # parsed body is replaced in place by its translation; the request is kept to echo back.
            check_responses_request(body)
            original.update(body)
            chat = to_chat(body)
            body.clear()
            body.update(chat)
            admitted.append(body)

        try:
            plan = self._admit(request, ctx, check_and_translate, "chat")
            if passes_through(plan, admitted[0]):
                return await self._forward(ctx, plan, responses_passthrough.endpoint(original))
            if plan.stream:
                stream = await gateway.stream_chat(ctx, plan)
                translated = TranslatedStream(stream, EventTranslator(original))
                return Streamed(translated, headers=stream_headers(ctx.request_id, stream))
            result = await gateway.chat(ctx, plan)
        except ModelyardError as error:
            return error_response(error, ctx.request_id)
        except Exception:
            return internal_error(ctx)
        answer = from_chat(result.body, original)
        if result.rejection is not None:
            return unvalidated(answer, result.rejection, ctx.request_id)
        return json_answer(orjson.dumps(answer), ctx.request_id)

    async def completions(self, request: Request) -> Response | Streamed:
        """Legacy completions, forwarded to OpenAI and OpenAI-compatible servers (http/completions_api.py);
        refused for other provider kinds. Metered under endpoint ``completions``."""
        ctx = request_context("completions")
        original: dict[str, Any] = {}

        def check_and_translate(body: Any, raw: bytes) -> None:
            check_completion_request(body)
            model = body.get("model")
            route = self.gateway.routes.get(model) if isinstance(model, str) else None
            refusal = unservable(route.targets, route.name) if route is not None else None
            if refusal is not None:
                raise refusal
            original.update(body)
            chat = completions_api.admission_body(body)  # admission sees the prompt as messages
            body.clear()
            body.update(chat)

        try:
            plan = self._admit(request, ctx, check_and_translate, "chat")
            refusal = unservable(plan.attempts.candidates, plan.route.name)  # a workload's default model
            if refusal is not None:
                self.gateway.recorder.refused(ctx, Refused(refusal, plan.facts, plan.attempts.describe()))
                raise refusal
            return await self._forward(ctx, plan, completions_api.endpoint(original, plan.redaction.body))
        except ModelyardError as error:
            return error_response(error, ctx.request_id)
        except Exception:
            return internal_error(ctx)

    async def rerank(self, request: Request) -> Response | Streamed:
        """Cohere/Jina-style rerank, forwarded to self-hosted rerankers (http/rerank_api.py). Metered under
        endpoint ``rerank``."""
        ctx = request_context("rerank")
        original: dict[str, Any] = {}

        def check_and_translate(body: Any, raw: bytes) -> None:
            check_rerank_request(body)
            original.update(body)
            admitted = rerank_api.admission_body(body)  # admission sees the texts as embedding input
            body.clear()
            body.update(admitted)

        try:
            plan = self._admit(request, ctx, check_and_translate, "rerank")
            return await self._forward(ctx, plan, rerank_api.endpoint(original, plan.redaction.body))
        except ModelyardError as error:
            return error_response(error, ctx.request_id)
        except Exception:
            return internal_error(ctx)

    async def messages(self, request: Request) -> Response | Streamed:
        """Anthropic's Messages API inbound, served as chat by every provider kind (http/messages_api.py,
        http/messages_stream.py); errors in Anthropic's shape. Metered under endpoint ``messages``."""
        ctx = request_context("messages")
        original: dict[str, Any] = {}
        api_key = request.headers.get("x-api-key")
        if api_key and AUTHORIZATION not in request.headers:
            request.headers[AUTHORIZATION] = f"Bearer {api_key}"  # the Anthropic SDK's way to send a key

        admitted: list[dict[str, Any]] = []

        def check_and_translate(body: Any, raw: bytes) -> None:
            check_messages_request(body)
            original.update(body)
            chat = messages_api.to_chat(body)  # admission sees the chat body, as for /v1/responses
            body.clear()
            body.update(chat)
            admitted.append(body)

        try:
            plan = self._admit(request, ctx, check_and_translate, "chat")
            if messages_passthrough.passes_through(plan, admitted[0]):
                return await self._forward(ctx, plan, messages_passthrough.endpoint(original))
            if plan.stream:
                stream = await self.gateway.stream_chat(ctx, plan)
                translated = TranslatedStream(stream, MessageEvents(original))
                return Streamed(translated, headers=stream_headers(ctx.request_id, stream))
            result = await self.gateway.chat(ctx, plan)
        except ModelyardError as error:
            return anthropic_error(error, ctx.request_id)
        except Exception:
            log.exception("internal error handling request %s", ctx.request_id)
            message = f"internal error (request {ctx.request_id}); the gateway's log has the details"
            return anthropic_error(InternalError(message), ctx.request_id)
        answer = messages_api.from_chat(result.body, original)
        if result.rejection is not None:
            return unvalidated(answer, result.rejection, ctx.request_id)
        return json_answer(orjson.dumps(answer), ctx.request_id)

    async def _forward(
        self, ctx: RequestContext, plan: RequestPlan, endpoint: Endpoint
    ) -> Response | Streamed:
        """An endpoint forwarded upstream as it is (gateway/passthrough.py): the raw answer or stream."""
        if plan.stream:
            stream = await self.gateway.forward_stream(ctx, plan, endpoint)
            return Streamed(stream, headers=stream_headers(ctx.request_id))
        return json_answer(await self.gateway.forward(ctx, plan, endpoint), ctx.request_id)
