"""The HTTP surface: app factory, thin route handlers, wire shapes, SSE, error envelopes."""
