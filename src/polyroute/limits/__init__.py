"""Request-rate limits: the pure GCRA and fixed-window rules, and the stores that decide them.

`rules.py` is the arithmetic (clock injected), `memory_store.py` decides in one process,
`redis_store.py` decides for many in one Lua script, `resilient_store.py` falls back from Redis to
memory while Redis is down, and `concurrency.py` caps the requests in flight in one process.
"""
