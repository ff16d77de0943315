"""Table 2 of the paper: valence-arousal prototypes, and the PN groups of §4.4.

Every other module takes emotion names, prototypes and groups from here.
"""

import numpy as np

# Table 2 (Yin et al., 2022), in the order used for class indices everywhere.
PROTOTYPES: dict[str, tuple[float, float]] = {
    "anger": (-0.40, 0.80),
    "contempt": (-0.57, 0.66),
    "disgust": (-0.68, 0.50),
    "embarrassment": (-0.31, -0.60),
    "fear": (-0.11, 0.79),
    "joy": (0.95, 0.12),
    "neutral": (0.00, 0.00),
    "pride": (0.31, 0.55),
    "sadness": (-0.50, -0.86),
    "surprise": (0.38, 0.92),
}

EMOTIONS: tuple[str, ...] = tuple(PROTOTYPES)

# §4.4: groups for PN accuracy (eq. 10). Neutral is its own group.
NEGATIVE = ("disgust", "contempt", "sadness", "anger", "embarrassment", "fear")
POSITIVE = ("pride", "surprise", "joy")
GROUPS: dict[str, str] = {
    **{e: "negative" for e in NEGATIVE},
    **{e: "positive" for e in POSITIVE},
    "neutral": "neutral",
}

# Spellings met in dataset file names and label files, mapped to Table 2 names.
ALIASES: dict[str, str] = {
    "angry": "anger",
    "contemptuous": "contempt",
    "disgusted": "disgust",
    "embarrass": "embarrassment",
    "embarrassed": "embarrassment",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "happy": "joy",
    "happiness": "joy",
    "proud": "pride",
    "sad": "sadness",
    "surprised": "surprise",
}


def canonical_emotion(name: str) -> str:
    """Returns the Table 2 name for `name` (case-insensitive, aliases allowed).

    Raises:
      ValueError: if `name` names no known emotion.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in PROTOTYPES:
        raise ValueError(
            f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)} "
            f"or an alias ({', '.join(sorted(ALIASES))})")
    return key


def emotion_index(name: str) -> int:
    """Class index of an emotion in `EMOTIONS`."""
    return EMOTIONS.index(canonical_emotion(name))


def prototype_array() -> np.ndarray:
    """(num_emotions, 2) float32 array of (valence, arousal), rows in `EMOTIONS` order."""
    return np.asarray([PROTOTYPES[e] for e in EMOTIONS], dtype=np.float32)
