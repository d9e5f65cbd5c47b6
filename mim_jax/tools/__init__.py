"""Command-line tools that are not training runs (mask gallery, ...)."""
