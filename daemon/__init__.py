"""The service: wires a driver, preprocessing, an engine and the publisher."""
