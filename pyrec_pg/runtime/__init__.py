"""Import path of the entry points for databases still running an older release's SQL."""
