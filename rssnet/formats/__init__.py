"""Every file format rssnet reads or writes, in one place (core layer):

- :mod:`.spectra`: RRUFF .txt and the .zip rruff.info distributes, two-column CSV/TSV;
- :mod:`.exports`: instrument vendors' export files (B&W Tek, Wasatch, Horiba, ...);
- :mod:`.evalset`: the evaluation sets (.npz, CONTRACTS §3);
- :mod:`.library`: a reference library read from a zip or a folder of spectra;
- :mod:`.archive`: the daemon's crash-safe archive (.rsa), whose arrays are encoded as on
  the wire (:mod:`rssnet.wire`).

Each reader raises :class:`~rssnet.errors.SpectrumFormatError` (or ``LibraryError``) naming
the file and the line, array or byte offset at fault.
"""
