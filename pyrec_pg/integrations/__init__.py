"""Integrations with other Python libraries (SQLAlchemy)."""
