"""Retrieval-quality benchmarking: BEIR dataset loading and IR metrics."""
