"""Sample datasets loaded into ordinary tables: MovieLens-100K and a synthetic generator."""
