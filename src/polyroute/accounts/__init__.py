"""Accounts and API keys: generation, hashing, verification, and their store."""
