"""Pure routing: a request's model slugs + the catalog -> an ordered plan of attempts."""
