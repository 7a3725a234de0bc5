"""Local GGUF models served in-process by llama.cpp (llama-cpp-python), behind the Provider protocol."""
