"""The adapter for Anthropic's Messages API (Claude): encode, decode, stream translation, I/O."""
