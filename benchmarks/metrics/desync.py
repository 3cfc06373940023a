"""DeSync: Synchformer's predicted audio-visual offset of a clip, in seconds (lower is better).

Lineages (the published computations; facts in ``shared/reference/SYNC_METRICS.md``):

* ``avbench`` (default): av-benchmark's, exactly.  Frames at 25 fps (FFmpeg's fps filter), the
  first ``int(25 L)``; short side to 224 (uint8 antialiased bicubic), centre crop 224 (Python
  ``round``), [-1, 1]; 16-frame segments every 8 frames.  Audio: channel mean, resampled to 16 kHz
  (torchaudio ``Resample``), the first ``int(16000 L)`` samples; 10,240-sample segments every 5,120;
  log-mel (128 bins, 65 frames) padded with one zero column to 66, then normalised.  Two windows of
  14 segments, the first and the last; a window's offset is ``linspace(-2, 2, 21)[argmax]``
  (float32, first maximum); DeSync = the mean ``|offset|`` of the windows.
* ``synchformer``: Synchformer's own test pipeline as SYNC_METRICS.md describes it: short side 256
  then a centre crop of 224; a 5 s crop centred in the clip (``start = max(L - 5, 0) / 2``, frames
  from ``int(25 start)``, samples from ``int(16000 start)``), and in it one 14-segment window,
  centred.  fp16 on a GPU (autocast), as the reference runs it; float32 on a CPU.  The record's
  ``dtype`` says which.  Written from that description: no reference outputs exist for it here.

Sign: Synchformer's convention, a positive offset means the audio starts earlier than the video.

A clip shorter than a window (4.8 s = 14 segments) follows ``short``: ``error`` (a record with
status ``error`` and the reason; the default) or ``pad``, JavisBench's rule: the clip's S < 14
segment features are repeated in order (0, 1, ..., S-1, 0, 1, ...) to 14, video and audio alike,
and scored as one window.  Clips of 4.8 s or more score as their lineage says, padding or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .avdecode import DecodeCache, DecodeError, center_crop_offsets, resize_short_side
from .synchformer import OFFSETS_S, WINDOW_SEGMENTS, Synchformer

VIDEO_FPS = 25
SAMPLE_RATE = 16000
SEGMENT_FRAMES, SEGMENT_STEP = 16, 8
AUDIO_SEGMENT, AUDIO_STEP = 10240, 5120
#: The shortest clip one window covers: (14 - 1) * 8 + 16 frames at 25 fps.
WINDOW_S = ((WINDOW_SEGMENTS - 1) * SEGMENT_STEP + SEGMENT_FRAMES) / VIDEO_FPS
SHORT_POLICIES = ("error", "pad")
CROP_S = 5.0  #: the synchformer lineage's temporal crop, s
MEL_MEAN, MEL_STD = -4.2677393, 4.5689974


@dataclass(frozen=True)
class Lineage:
    name: str
    short_side: int  #: the resize before the 224 centre crop
    windows: str  #: "first_last" or "centre"
    description: str


LINEAGES = {
    "avbench": Lineage("avbench", 224, "first_last",
                       "av-benchmark: 25 fps, short side 224, centre crop 224; the first and the last 14-segment "
                       "windows; mean |argmax offset|"),
    "synchformer": Lineage("synchformer", 256, "centre",
                           "Synchformer's test pipeline: 25 fps, short side 256, centre crop 224; a 5 s crop centred "
                           "in the clip and one 14-segment window centred in it; |argmax offset|; fp16 on a GPU"),
}


class TooShort(ValueError):
    """A clip shorter than the lineage needs (status ``not_applicable`` in a benchmark run)."""


def video_input(frames: np.ndarray, short_side: int = 224) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 at 25 fps -> ``(T, 3, 224, 224)`` float in [-1, 1]."""
    x = resize_short_side(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), short_side)
    top, left = center_crop_offsets(x.shape[-2], x.shape[-1], 224)
    x = x[..., top:top + 224, left:left + 224]
    return (x.float() / 255.0 - 0.5) / 0.5


def video_segments(x: torch.Tensor) -> torch.Tensor:
    """``(T, 3, H, W)`` -> ``(S, 3, 16, H, W)``: 16 frames every 8, ``S = (T - 16) // 8 + 1``."""
    s = (x.shape[0] - SEGMENT_FRAMES) // SEGMENT_STEP + 1
    if s < 1:
        raise TooShort(f"{x.shape[0]} frames at 25 fps, fewer than one 16-frame segment")
    return torch.stack([x[i * SEGMENT_STEP:i * SEGMENT_STEP + SEGMENT_FRAMES] for i in range(s)]).transpose(1, 2)


def waveform_16k(audio: np.ndarray, sr: int, n: int) -> torch.Tensor:
    """The channel mean resampled to 16 kHz (torchaudio ``Resample``, its defaults), first ``n`` samples."""
    import torchaudio

    w = torch.from_numpy(np.ascontiguousarray(audio)).float().mean(0)
    if sr != SAMPLE_RATE:
        w = torchaudio.transforms.Resample(sr, SAMPLE_RATE)(w)
    return w[:n]


def mel_segments(wave: torch.Tensor) -> torch.Tensor:
    """``(N,)`` at 16 kHz -> ``(S, 128, 66)``: 10,240 samples every 5,120, log-mel, a zero column, normalised."""
    import torchaudio

    s = (wave.shape[0] - AUDIO_SEGMENT) // AUDIO_STEP + 1
    if s < 1:
        raise TooShort(f"{wave.shape[0]} samples at 16 kHz, fewer than one 10,240-sample segment")
    segs = torch.stack([wave[i * AUDIO_STEP:i * AUDIO_STEP + AUDIO_SEGMENT] for i in range(s)])
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=1024, win_length=400, hop_length=160,
                                               n_mels=128)(segs)
    mel = torch.nn.functional.pad(torch.log(mel + 1e-6), (0, 1))
    return (mel - MEL_MEAN) / (2 * MEL_STD)


def window_indices(n_segments: int, lineage: Lineage, short: str) -> list[list[int]]:
    """The segments of each scored window."""
    w = WINDOW_SEGMENTS
    if n_segments < w:
        if short != "pad":
            raise TooShort(f"{n_segments} segments, fewer than the {w} of one window ({WINDOW_S:.2f} s)")
        return [[i % n_segments for i in range(w)]]
    if lineage.windows == "centre":
        start = (n_segments - w) // 2
        return [list(range(start, start + w))]
    return [list(range(w)), list(range(n_segments - w, n_segments))]


def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def check_batch(batch_size: int | None) -> None:
    """Refuse a batch size below 1 (None: the device's default)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def video_batch(device: str = "cpu") -> int:
    """Segments per MotionFormer call when none is asked for: 1 on a CPU, 8 on a GPU.

    Measured, not derived: on two 2-core CPUs (32 MB and 480 MB of L3) a clip's 24 segments took
    about 0.6 times as long one per call as eight per call (62.6 s against 95.4 s, and 30.3 s against
    49.1 s; docs: Speed).  The offsets do not depend on the batch; the logits agree to float
    rounding."""
    return 8 if str(device).startswith("cuda") else 1


#: Mel segments per AST call (small: 74 tokens each, so batching costs nothing on a CPU).
AUDIO_BATCH = 8


def clip_duration(cache: DecodeCache) -> float:
    """The shorter of the video's (its frames at 25 fps, counted from the packets when IB-score alone
    needs it, so nothing is decoded at 25 fps for it) and the audio's durations, in seconds."""
    audio, sr = cache.audio()
    return min(cache.count_at_rate(VIDEO_FPS) / VIDEO_FPS, audio.shape[1] / sr)


def score_clip(model: Synchformer, cache: DecodeCache, duration_s: float | None = None, lineage: str = "avbench",
               short: str = "error", batch_size: int | None = None, device: str = "cpu") -> dict:
    """One clip's DeSync record: ``desync``, per window ``offsets_s`` (signed), ``logits`` and
    ``expected_offsets_s`` (softmax-weighted), ``windows`` (their segments), ``n_segments``.

    Raises :class:`TooShort` (the clip is shorter than the lineage needs, under ``short="error"``) or
    :class:`~benchmarks.metrics.avdecode.DecodeError`."""
    lin = LINEAGES[lineage]
    check_batch(batch_size)
    length = clip_duration(cache) if duration_s is None else float(duration_s)
    frames = cache.frames(VIDEO_FPS)
    need = int(VIDEO_FPS * length)
    if len(frames) < need:
        raise DecodeError(f"{cache.video}: {len(frames)} frames at 25 fps, fewer than the {need} of {length:g} s")
    audio, sr = cache.audio()
    if audio.shape[1] / sr + 1e-9 < length:
        raise DecodeError(f"{cache.video}: {audio.shape[1] / sr:.3f} s of audio, shorter than {length:g} s")
    wave = waveform_16k(audio, sr, int(SAMPLE_RATE * length))
    frames = frames[:need]
    if lin.windows == "centre":  # a 5 s crop centred in the clip
        start = max(length - CROP_S, 0.0) / 2
        span = min(length, CROP_S)
        frames = frames[int(VIDEO_FPS * start):int(VIDEO_FPS * start) + int(VIDEO_FPS * span)]
        wave = wave[int(SAMPLE_RATE * start):int(SAMPLE_RATE * start) + int(SAMPLE_RATE * span)]
    video = video_segments(video_input(frames, lin.short_side))
    mel = mel_segments(wave)
    n = min(video.shape[0], mel.shape[0])
    windows = window_indices(n, lin, short)
    model = model.to(device)
    half = lineage == "synchformer" and str(device).startswith("cuda")
    with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=half):
        v = _batched(model.video_features, video.to(device), video_batch(device) if batch_size is None else batch_size)
        a = _batched(model.audio_features, mel.to(device), AUDIO_BATCH if batch_size is None else batch_size)
        logits = model.logits(torch.stack([v[w] for w in windows]), torch.stack([a[w] for w in windows])).float().cpu()
    offsets = OFFSETS_S[logits.argmax(-1)]
    expected = torch.softmax(logits, -1) @ OFFSETS_S
    # the reference's mean: of the float32 offsets, in float64
    return {"desync": float(np.mean([abs(float(o)) for o in offsets])), "offsets_s": [float(o) for o in offsets],
            "expected_offsets_s": [float(o) for o in expected], "logits": logits.tolist(), "windows": windows,
            "n_segments": n, "duration_s": length, "padded": n < WINDOW_SEGMENTS,
            "dtype": "float16" if half else "float32"}


def set_desync(records) -> float | None:
    """DeSync of a set of clip records: the mean ``|offset|`` over all their windows (av-benchmark's
    set mean; with two windows per clip it is the mean of the clips' DeSync); None for no window."""
    offsets = [abs(float(o)) for r in records for o in r["offsets_s"]]
    return float(np.mean(offsets)) if offsets else None
