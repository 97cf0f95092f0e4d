"""Experiment specs: the typed settings, their checks, presets and URL form (standard library only)."""
