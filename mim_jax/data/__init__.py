"""Data: random-access sources, numpy transforms and grain pipelines."""
