"""Pure value types shared by every feature package; imports nothing else of ours."""
