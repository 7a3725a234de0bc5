"""Operations: request ids, Prometheus metrics, structured logs with secret scrubbing, optional traces.

It may import `domain` and `settings` only; the HTTP layer installs its middleware and `/metrics`,
and the relay reports each finished generation through `observe_generation`.
"""
