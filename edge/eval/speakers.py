"""Speaker codes of the staged speech corpora that name one voice: used wherever speakers are split or held out."""

from __future__ import annotations

# URDU overlaps.csv: SF4 is SF1. ASED SOURCE.txt: recordings are shared across codes {23, 25} and {39, 45, 52}
# ("put them in the same fold"), so they are treated as one speaker each and no split separates them.
SPEAKER_ALIAS = {("urdu", "SF4"): "SF1", ("ased", "25"): "23", ("ased", "45"): "39", ("ased", "52"): "39"}


def canonical_speaker(corpus: str, speaker: str) -> str:
    """The one code a corpus's speaker is known by (its own unless listed in ``SPEAKER_ALIAS``)."""
    return SPEAKER_ALIAS.get((corpus, speaker), speaker)
