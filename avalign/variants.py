"""Named AV-Align variants: the semantics used by different published copies of the scorer.

AV-Align numbers from different repositories are not comparable unless they name the same
variant.  Every result of this package records the variant it was computed with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """How one published copy of AV-Align computes the score.

    Attributes
    ----------
    name : str
        Identifier used on the command line (``--variant``) and in every record.
    audio_sr : int or None
        Sample rate (Hz) the audio is resampled to before onset detection; None keeps the
        file's native rate.
    one_to_one : bool
        Whether a video peak can be matched by at most one audio peak.  Without it the IoU
        can exceed 1.
    flow_threshold : float or None
        Minimum flow magnitude (pixels/frame) of a video peak; None for no threshold.
    iou_eps : float
        Added to the IoU denominator.
    description : str
        One line for ``--help`` and the docs.
    """

    name: str
    audio_sr: int | None
    one_to_one: bool
    flow_threshold: float | None
    iou_eps: float
    description: str

    @property
    def can_exceed_one(self) -> bool:
        """True when scores above 1 are possible (many-to-one matching)."""
        return not self.one_to_one


TEMPOTOKENS_2025 = Variant(
    name="tempotokens-2025",
    audio_sr=22050,
    one_to_one=True,
    flow_threshold=0.1,
    iou_eps=0.0,
    description="the authors' current scorer (bf0b1e3): one-to-one matching, flow peaks >= 0.1",
)
TEMPOTOKENS_2023 = Variant(
    name="tempotokens-2023",
    audio_sr=22050,
    one_to_one=False,
    flow_threshold=None,
    iou_eps=0.0,
    description="the first public semantics (34d9502): many-to-one matching, no flow threshold",
)
JAVISBENCH = Variant(
    name="javisbench",
    audio_sr=None,
    one_to_one=False,
    flow_threshold=None,
    iou_eps=1e-6,
    description="JavisBench's copy: 2023 semantics, audio at its native rate, 1e-6 in the IoU denominator",
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (TEMPOTOKENS_2025, TEMPOTOKENS_2023, JAVISBENCH)}
DEFAULT_VARIANT = TEMPOTOKENS_2025.name


def get_variant(variant: str | Variant) -> Variant:
    """Return the :class:`Variant` for a name (or pass a Variant through).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(variant, Variant):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown AV-Align variant {variant!r}; choose one of {', '.join(VARIANTS)}") from None
