"""Storage plumbing shared by every store: engine factory, table definitions, migrations."""
