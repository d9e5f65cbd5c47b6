"""Evaluators: kNN and linear probes on frozen features, reconstruction grids."""
