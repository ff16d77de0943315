"""Synthetic ADFES-like face videos, generated and preprocessed like ADFES."""
