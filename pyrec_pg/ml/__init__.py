"""Machine learning in plain numpy/scipy: recipes, evaluation, top-k, attribute regression."""
