"""TempoTokens: audio-to-video generation by adapting a text-to-video model (arXiv 2309.16429).

``from tempotokens import BEATs, AudioTokenAdaptor`` — submodules load on first use, so that
command-line help stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BEATs": "tempotokens.beats",
    "BEATsOutput": "tempotokens.beats",
    "AudioTokenAdaptor": "tempotokens.adaptor",
    "AdaptorOutput": "tempotokens.adaptor",
    "AudioToVideoPipeline": "tempotokens.pipeline",
    "AudioToVideoPipelineOutput": "tempotokens.pipeline",
    "make_tiny": "tempotokens.tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tempotokens' has no attribute {name!r}")
