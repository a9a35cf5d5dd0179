"""The catalog: model definitions, versions and runs as rows of pyrec's own tables."""
