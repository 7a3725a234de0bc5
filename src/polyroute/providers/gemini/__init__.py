"""The adapter for Google's Gemini API (AI Studio and Vertex AI): encode, decode, stream translation, I/O."""
