"""IB-score: the cosine of ImageBind's video and audio embeddings of a clip, in [-1, 1] (higher is
better; tables may show x 100 and then say so).

Lineages (facts in ``shared/reference/SYNC_METRICS.md``):

* ``avbench`` (default): av-benchmark's, exactly.  Frames at 0.5 fps (FFmpeg's fps filter, so at
  about 0.96, 2.96, 4.96 s), the first ``int(0.5 L)``; short side to 224 (uint8 antialiased bicubic),
  no centre crop; CLIP's normalisation; three 224 crops along the long side (0, ceil((long - 224) / 2),
  long - 224); every consecutive frame pair is a 2-frame clip: ``3 (n - 1)`` views, clip-major.
  Audio: the whole file, every channel resampled to 16 kHz; three 2 s clips starting at
  ``k * Fraction(max(D - 2, 0)) / 2`` (exact rationals); each clip's mean subtracted in place on the
  shared waveform (so overlapping clips see the earlier subtraction); Kaldi fbank of channel 0 (128
  bins), zero-padded to 204 frames, ``(x + 4.268) / 9.138``.  The score is the cosine of the mean
  of the view embeddings (unit vectors, not re-normalised) and the mean of the clip embeddings.
* ``javisbench``: ImageBind's stock video loader as JavisBench and VABench call it: 5 clips of 2 s
  spread over the clip, the first and last decoded frame of each, a float bilinear resize, three
  crops: 15 views (:func:`javisbench_views`); the audio as above.  Written from the loader's
  description; no reference outputs exist for it here.

A clip too short for its lineage (fewer than 2 frames at 0.5 fps, under 4 s for ``avbench``;
under 2 s for ``javisbench``) follows ``short`` as DeSync does: ``error``, or ``pad`` (the frames
are repeated in order to the two a view needs).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from .avdecode import DecodeCache, DecodeError, long_side_crops, resize_short_side
from .desync import TooShort, check_batch, clip_duration
from .imagebind import ImageBind

FPS = 0.5
SAMPLE_RATE = 16000
CLIP_S = 2.0
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FBANK_MEAN, FBANK_STD, FBANK_FRAMES = -4.268, 9.138, 204
LINEAGES = {
    "avbench": "av-benchmark: frames at 0.5 fps, short side 224, three long-side crops, every consecutive "
               "frame pair a view (3 (n - 1) views); three 2 s audio clips over the whole file",
    "javisbench": "JavisBench / VABench: ImageBind's stock loader, 5 clips of 2 frames x 3 crops = 15 views; "
                  "three 2 s audio clips over the whole file",
}


def _clip_normalise(x: torch.Tensor) -> torch.Tensor:
    """``(T, 3, h, w)`` in [0, 1] -> CLIP's per-channel normalisation."""
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def normalised_frames(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, h, w)``: short side 224, /255, CLIP's normalisation."""
    x = resize_short_side(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), 224).float() / 255.0
    return _clip_normalise(x)


def pair_views(x: torch.Tensor, pairs: list[tuple[int, int]]) -> torch.Tensor:
    """``(T, 3, h, w)`` and frame pairs -> ``(3 len(pairs), 3, 2, 224, 224)``: per pair, the three crops."""
    crops = long_side_crops(x.shape[-2], x.shape[-1], 224)
    return torch.stack([x[[i, j], :, t:t + 224, l:l + 224].transpose(0, 1) for i, j in pairs for t, l in crops])


def audio_clip_starts(duration_s: float, n: int = 3, clip_s: float = CLIP_S) -> list[Fraction]:
    """pytorchvideo's ``ConstantClipsPerVideoSampler`` starts (the ImageBind fork's): ``k * Fraction(max(D - 2,
    0)) / (n - 1)``, exact rationals on the float duration."""
    span = Fraction(max(duration_s - clip_s, 0))
    return [k * span / (n - 1) for k in range(n)]


def fbank_clips(audio: np.ndarray, sr: int) -> torch.Tensor:
    """``(C, N)`` at ``sr`` -> ``(3, 1, 128, 204)`` normalised Kaldi fbanks of three 2 s clips."""
    import torchaudio

    wave = torch.tensor(audio, dtype=torch.float32)  # a copy: the in-place subtraction must not reach the shared cache
    if sr != SAMPLE_RATE:
        wave = torchaudio.functional.resample(wave, sr, SAMPLE_RATE)
    duration = wave.shape[1] / SAMPLE_RATE
    out = []
    for start in audio_clip_starts(duration):
        view = wave[:, int(start * SAMPLE_RATE):int((start + Fraction(CLIP_S)) * SAMPLE_RATE)]
        view -= view.mean()  # in place on the shared waveform, as the reference does
        fb = torchaudio.compliance.kaldi.fbank(view, htk_compat=True, sample_frequency=SAMPLE_RATE, use_energy=False,
                                               window_type="hanning", num_mel_bins=128, dither=0.0, frame_length=25,
                                               frame_shift=10).transpose(0, 1)
        p = FBANK_FRAMES - fb.shape[1]
        fb = torch.nn.functional.pad(fb, (0, p)) if p > 0 else fb[:, :FBANK_FRAMES]
        out.append(((fb - FBANK_MEAN) / FBANK_STD).unsqueeze(0))
    return torch.stack(out)


def javisbench_views(cache: DecodeCache, duration_s: float, clips: int = 5) -> torch.Tensor:
    """ImageBind's stock video loader: ``clips`` clips of 2 s starting as :func:`audio_clip_starts`
    spreads them; in each, the first and the last decoded frame with a time in ``[start, start + 2)``
    (``UniformTemporalSubsample(2)``); /255, short side to 224 by float bilinear interpolation
    (``ShortSideScale``, long side ``floor(224 long / short)``), CLIP's normalisation, three crops
    along the long side: ``(3 clips, 3, 2, 224, 224)``."""
    frames, times = cache.frames(None), cache.native_times()
    pairs = []
    for start in audio_clip_starts(duration_s, clips):
        inside = [k for k, t in enumerate(times) if float(start) <= t < float(start) + CLIP_S]
        if not inside:
            raise TooShort(f"no frame in the 2 s clip at {float(start):.3f} s")
        pairs.append((inside[0], inside[-1]))
    used = sorted({k for p in pairs for k in p})
    x = torch.from_numpy(frames[used]).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]  # ShortSideScale's own size rule: floor((long / short) * 224)
    size = (224, int(math.floor(w / h * 224))) if h <= w else (int(math.floor(h / w * 224)), 224)
    x = _clip_normalise(torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False))
    where = {k: i for i, k in enumerate(used)}
    return pair_views(x, [(where[i], where[j]) for i, j in pairs])


def view_batch(device: str = "cpu") -> int:
    """Views per ImageBind vision call when none is asked for: 3 on a CPU (measured: 9 views took
    17.0 s in threes against 19-21 s in one batch on one 2-core CPU, 8.6 s against 10.1 s on another;
    docs: Speed), 8 on a GPU.  The score agrees to float rounding whatever the batch."""
    return 8 if str(device).startswith("cuda") else 3


def score_clip(model: ImageBind, cache: DecodeCache, duration_s: float | None = None, lineage: str = "avbench",
               short: str = "error", batch_size: int | None = None, device: str = "cpu") -> dict:
    """One clip's IB record: ``ib_score``, ``n_views``, ``n_audio_clips``, ``duration_s``.

    Raises :class:`~benchmarks.metrics.desync.TooShort` or :class:`~benchmarks.metrics.avdecode.DecodeError`."""
    check_batch(batch_size)
    audio, sr = cache.audio()
    length = clip_duration(cache) if duration_s is None else float(duration_s)
    if lineage == "avbench":
        frames = cache.frames(FPS)
        n = int(FPS * length)
        if len(frames) < n:
            raise DecodeError(f"{cache.video}: {len(frames)} frames at 0.5 fps, fewer than the {n} of {length:g} s")
        frames = frames[:n]
        if n < 2:
            if short != "pad" or n < 1:
                raise TooShort(f"{n} frame(s) at 0.5 fps in {length:g} s, fewer than the 2 a view needs (4 s)")
            pairs = [(0, 0)]
        else:
            pairs = [(i, i + 1) for i in range(n - 1)]
    elif lineage == "javisbench":
        if length < CLIP_S and short != "pad":
            raise TooShort(f"{length:g} s, shorter than one 2 s clip")
        pairs = None
    else:
        raise ValueError(f"unknown IB lineage {lineage!r}; choose one of {', '.join(LINEAGES)}")
    views = pair_views(normalised_frames(frames), pairs) if pairs is not None else javisbench_views(cache, length)
    fbank = fbank_clips(audio, sr)
    model = model.to(device)
    with torch.inference_mode():
        b = view_batch(device) if batch_size is None else batch_size
        v = torch.cat([model.embed_video(views[i:i + b].to(device)) for i in range(0, len(views), b)])
        a = model.embed_audio(fbank.to(device))
        score = torch.nn.functional.cosine_similarity(v.mean(0), a.mean(0), dim=0, eps=1e-8)
    return {"ib_score": float(score), "n_views": int(v.shape[0]), "n_audio_clips": int(a.shape[0]),
            "duration_s": length, "padded": pairs == [(0, 0)] or (lineage == "javisbench" and length < CLIP_S)}
