"""Storage: the pgvector codec, reading interactions, writing and reading vector tables."""
