"""varec: valence-arousal emotion recognition from face video (Yin et al.,
2022)."""

__version__ = "0.1.0"
