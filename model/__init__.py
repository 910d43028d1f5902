"""RSSNet: the separation network, its config and checkpoint format."""
