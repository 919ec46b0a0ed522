"""A fake OpenAI upstream that fails on purpose: each request draws a fault with a given probability, or
follows a script. Faults are the common scenarios (500, 429 with Retry-After, 503, malformed JSON, slow
past the gateway's read timeout) plus ``reset``, a connection closed before any response."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes import openai as fake_openai
from tests.fakes.common import FakeState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FaultPlan:
    rate: float = 0.0
    faults: tuple[str, ...] = ("server_error",)
    #: When set, scenarios are taken from here in order (then "text"), ignoring ``rate``.
    script: list[str] = field(default_factory=list)
    seed: int = 7
    served: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next(self) -> str:
        if self.script:
            return self.script.pop(0)
        return self.rng.choice(self.faults) if self.rng.random() < self.rate else "text"


def create_app(state: FakeState, plan: FaultPlan) -> web.Application:
    @web.middleware
    async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
        scenario = plan.next()
        plan.served.append(scenario)
        if scenario == "reset":
            await state.record(request)
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        state.scenario = scenario  # type: ignore[assignment]
        return await handler(request)

    app = fake_openai.create_app(state)
    app.middlewares.append(inject)
    return app
