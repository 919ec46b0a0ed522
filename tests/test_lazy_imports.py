"""A gateway loads what its config uses: the Redis client (and the OpenTelemetry metrics SDK it imports)
only when a workload caches in Redis."""

from __future__ import annotations

import subprocess
import sys


def test_the_gateway_without_a_redis_cache_does_not_import_the_redis_client() -> None:
    code = (
        "import sys\n"
        "import modelyard.app, modelyard.gateway.pipeline, modelyard.http.app\n"
        "from modelyard.routing.cache import ResponseCache\n"
        "ResponseCache({})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'opentelemetry'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
