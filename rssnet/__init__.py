"""rssnet: single-channel Raman spectra unmixing (RSSNet) as a streaming instrument service.

Subpackages follow the product's design card: ``rssnet.daemon`` (wiring, service),
``rssnet.drivers`` (spectrometers), ``rssnet.engine`` (inference backends),
``rssnet.config`` (typed configuration), ``rssnet.model`` (the network),
``rssnet.training`` (library, synthesis, training) and ``rssnet.analysis``
(metrics, baselines, identification).
"""

__version__ = "0.1.0"
