"""Recipes, one module each: a user-item matrix in, user and item vectors out (base.Recipe)."""
