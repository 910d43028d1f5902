"""Typed configuration (pydantic, TOML) and the shipped example and demo configs."""
