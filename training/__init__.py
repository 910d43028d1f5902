"""Spectral libraries, mixture synthesis and training."""
