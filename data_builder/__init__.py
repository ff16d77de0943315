"""TFDS builders: `adfes` (the licensed ADFES videos, supplied by the user) and
`synthetic_adfes` (the embedded default, generated here)."""
