"""AV-Align: how well a video's motion lines up in time with its audio.

Reference-exact re-implementation of the metric of Yariv et al. (arXiv 2309.16429), with named
variants, defined edge cases, parallel batch scoring and a torchmetrics-style class.

>>> from avalign import score_file
>>> result = score_file("clip.mp4")           # uses clip.wav beside it, else the mp4's audio track
>>> result.score, result.status
"""

from .io import MediaError, read_audio

from .readers import read_video_gray
from .metric import AVAlignMetric
from .parallel import Job, score_files
from .protocol import NATIVE, Protocol, conform, cover_crop
from .score import AVAlignResult, score_arrays, score_file
from .stats import Summary, bootstrap_ci, summarize
from .variants import DEFAULT_VARIANT, VARIANTS, Variant, get_variant

__all__ = [
    "AVAlignMetric",
    "AVAlignResult",
    "DEFAULT_VARIANT",
    "Job",
    "MediaError",
    "NATIVE",
    "Protocol",
    "Summary",
    "VARIANTS",
    "Variant",
    "bootstrap_ci",
    "conform",
    "cover_crop",
    "get_variant",
    "read_audio",
    "read_video_gray",
    "score_arrays",
    "score_file",
    "score_files",
    "summarize",
]
