"""The evaluation protocol of the learned sync metrics (DeSync, IB-score): the clip length and the
short-clip policy.

Their lineages fix their own frame rates and sizes (25 fps and 224 px for DeSync, 0.5 fps for
IB-score ``avbench``), so what a run chooses is only how much of each clip is scored and what
happens to a clip shorter than its lineage needs.  Every per-clip record carries it as
``protocol`` (:meth:`SyncProtocol.to_record`), and every table column names it
(:meth:`SyncProtocol.describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The short-clip policies: an error record (``not_applicable`` in a benchmark run), or JavisBench's padding.
SHORT_POLICIES = ("error", "pad")


@dataclass(frozen=True)
class SyncProtocol:
    """How a sync metric is applied to each clip.

    Attributes
    ----------
    duration_s : float or None
        The clip length L in seconds, av-benchmark's ``audio_length``; None: each clip's own (the
        shorter of its video's and its audio's durations).
    short : str
        ``"error"`` (a clip shorter than the lineage needs gets no number) or ``"pad"`` (it is
        padded as JavisBench pads, and its record says so).
    """

    duration_s: float | None = None
    short: str = "error"

    def __post_init__(self) -> None:
        if self.short not in SHORT_POLICIES:
            raise ValueError(f"short must be one of {', '.join(SHORT_POLICIES)}, got {self.short!r}")

    def to_record(self) -> dict[str, Any]:
        """``{duration_s, short}``: the record's ``protocol`` field."""
        return {"duration_s": self.duration_s, "short": self.short}

    def describe(self, lineage: str) -> str:
        """The protocol words of a column: ``"avbench, L = 2 s, short clips: not applicable"``."""
        length = "each clip's length" if self.duration_s is None else f"L = {self.duration_s:g} s"
        return f"{lineage}, {length}, short clips: {'not applicable' if self.short == 'error' else 'padded'}"
