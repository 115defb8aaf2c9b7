"""Application services: each owns its transaction; handlers and CLI commands call them."""
