"""The client-side tools of the ``rssnet`` command: ``listen``, ``demo``, ``identify``, ``plot``,
``keys``.  They stand above the daemon and the analysis code (the demo starts a daemon and
scores its answers; identify and plot use the analysis library); the service never imports
them.
"""
