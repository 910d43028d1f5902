"""Preprocessing: a driver's raw spectrum → the model's input on the model's axis (core layer).

- :mod:`.preprocessor`: the configured chain (:class:`~.preprocessor.Preprocessor`);
- :mod:`.steps`: its steps, each a pure function on one spectrum (numpy in, numpy out);
- :mod:`.axis`: pixel → wavelength → Raman shift, and resampling onto another axis.
"""
