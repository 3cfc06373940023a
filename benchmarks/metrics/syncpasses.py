"""The learned sync metrics' feature passes on one 8 s clip, as shapes and batches: what ``make bench``
(``benchmarks/suites/test_bench_sync.py``) and the GPU check (``benchmarks.gpu_measure``) time.

An 8 s clip under the ``avbench`` lineages gives DeSync 24 video segments (16 x 224 x 224) and 24
mel segments (128 x 66), and IB 9 views (2 x 224 x 224) and 3 fbank clips (128 x 204); each pass runs
in the scorers' default batches for the device (``desync.video_batch``, ``desync.AUDIO_BATCH``,
``ib.view_batch``; IB's audio in one call, as ``ib.score_clip`` makes it).
"""

from __future__ import annotations

from typing import Callable

from . import desync, ib

#: Items per 8 s clip: DeSync segments (video and audio), IB views (video) and fbank clips (audio).
ITEMS_8S = {"desync": {"video": 24, "audio": 24}, "ib": {"video": 9, "audio": 3}}


def feature_passes(metric: str, model, device: str = "cpu",
                   items: dict[str, int] | None = None) -> dict[str, tuple[Callable, tuple[int, ...], int]]:
    """``{"video" | "audio": (model's feature function, input shape, batch)}`` of ``metric`` (``desync``:
    a :class:`~benchmarks.metrics.synchformer.Synchformer`; ``ib``: an
    :class:`~benchmarks.metrics.imagebind.ImageBind`); ``items`` overrides the per-part counts of
    :data:`ITEMS_8S` (the GPU check's dry run uses 2)."""
    n = {**ITEMS_8S[metric], **(items or {})}
    if metric == "desync":
        return {"video": (model.video_features, (n["video"], 3, 16, 224, 224), desync.video_batch(device)),
                "audio": (model.audio_features, (n["audio"], 128, 66), desync.AUDIO_BATCH)}
    return {"video": (model.embed_video, (n["video"], 3, 2, 224, 224), ib.view_batch(device)),
            "audio": (model.embed_audio, (n["audio"], 1, 128, ib.FBANK_FRAMES), n["audio"])}
