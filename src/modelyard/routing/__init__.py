"""Routing decisions as pure functions of (config, request, observed state): data-class policy, the order
of targets to try, circuit breakers, cache keys and answer validators. Tested from tables of cases."""
