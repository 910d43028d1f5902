"""Preprocessing steps, each a pure function on one spectrum (numpy in, numpy out).

:mod:`rssnet.preprocess` chains them as configured; drivers use :mod:`.axis` for the
pixel → wavelength → Raman shift conversion.  Core layer: imports nothing above types.
"""
