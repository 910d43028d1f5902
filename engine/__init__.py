"""Inference engines: backends that run a separation model behind one small Protocol."""
