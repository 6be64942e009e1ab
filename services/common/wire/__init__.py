"""Conversions between wire values and domain values."""
