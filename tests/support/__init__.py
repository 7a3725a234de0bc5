"""Helpers shared by tests: fresh databases, and the like."""
