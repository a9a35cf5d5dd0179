"""Analysis: experiments, model comparison, data readiness and the evaluation report."""
