"""Models, provider endpoints and prices: the built-in catalog plus the operator's config."""
