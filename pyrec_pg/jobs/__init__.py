"""Jobs: training, fold-in, cold start, batch recommendations and segments."""
