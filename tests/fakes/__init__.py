"""Fake upstream providers: real HTTP servers on loopback that speak a provider's real wire protocol."""

from .openai_upstream import SCENARIOS, FakeOpenAIUpstream, RecordedRequest

__all__ = ["SCENARIOS", "FakeOpenAIUpstream", "RecordedRequest"]
