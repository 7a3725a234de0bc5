"""The adapter for every OpenAI-compatible host (OpenAI, Groq, Together, vLLM, Ollama, ...)."""
