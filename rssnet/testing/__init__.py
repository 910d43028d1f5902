"""Test helpers (emulators, fixtures). Never imported by a run-time path."""
