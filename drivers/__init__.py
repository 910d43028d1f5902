"""Spectrometer drivers: the :class:`~rssnet.drivers.base.Driver` protocol and its implementations.

Built-in drivers are chosen by name; third-party ones come in through the
``rssnet.drivers`` entry-point group.
"""
