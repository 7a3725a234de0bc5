"""Usage log: one record per generation (model, provider, tokens, cost, timings), written in batches."""
