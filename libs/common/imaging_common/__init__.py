"""Shared library of the imaging center platform."""
