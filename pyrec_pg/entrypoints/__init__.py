"""Entry points: the functions behind the extension's SQL, and the managed flavour's client."""
