"""Metrics, library unmixing baselines, identification and plots."""
