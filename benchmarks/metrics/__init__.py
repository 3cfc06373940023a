"""Video-quality metrics beside AV-Align: FVD (two lineages), IS (C3D) and CLIPSIM, from local weights.

One module per metric, each a pure features-to-number core (:mod:`.frechet`,
:func:`.inception_score.inception_score`, :func:`.clipsim.clip_scores`) beside its loader and
preprocessing; :mod:`.videos` reads clips under the evaluation protocol; :mod:`.weights` names and
loads the published files.  CLI: ``python -m benchmarks.metrics {fvd,is,clipsim} --help``.
"""

from .frechet import FrechetError, frechet_distance, gaussian_stats
from .inception import inception_score
from .weights import WEIGHTS, WeightsError

__all__ = ["FrechetError", "frechet_distance", "gaussian_stats", "inception_score", "WEIGHTS", "WeightsError"]
