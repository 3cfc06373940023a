"""A synthetic audio-visual dataset with known alignment, in the layout of the real ones.

Each clip shows one textured object on a textured background that moves *when* a sound happens:

* ``drum hits``: a drum head jolts on each hit (a low thump with a noisy attack),
* ``bouncing ball``: a ball is kicked on each ping,
* ``hand claps``: two hands snap together or apart on each clap (a short noise burst).

An event at time ``t`` starts a motion impulse whose fastest step is between frames ``i - 1`` and
``i = round(t * fps)``, so the flow trajectory peaks at frame ``i``; the sound starts at ``t``.  Clips vary in frame
rate (24, 25, 30 fps) so that readers must use each video's real fps.

Layout (as VGGSound/Landscape in the reference): ``OUT/video/<id>.mp4`` (no audio track),
``OUT/audio/<id>.wav`` (16 kHz mono), ``OUT/synthetic.csv`` (``ytid,start_time,class,set``) and
``OUT/events.json`` (the event times of every clip).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

CLASSES = ("drum hits", "bouncing ball", "hand claps")
#: The demo's dataset (``make demo``, ``benchmarks.run --dataset synthetic``, the toy recipe): 96
#: training and 24 test clips, "jolt" motion (a frame shows the sound just before it); fixed before
#: the toy model was trained, the same for every row.
DEMO_DATASET = {"num_clips": 120, "seed": 0, "test_fraction": 0.2, "motion": "jolt", "jolt_amplitude": 0.25,
                "jolt_tau_s": 0.05}
FRAME_RATES = (24.0, 25.0, 30.0)


@dataclass(frozen=True)
class SyntheticClip:
    clip_id: str
    label: str
    split: str
    fps: float
    events_s: tuple[float, ...]


def _texture(rng: np.random.Generator, h: int, w: int, base: int, spread: int) -> np.ndarray:
    noise = rng.integers(base - spread, base + spread, size=(h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (3, 3), 0.8)


def _event_times(rng: np.random.Generator, duration_s: float, fps: float) -> list[float]:
    """3-6 events at least 0.4 s apart, on frame times, away from the clip's edges."""
    times: list[float] = []
    for _ in range(200):
        if len(times) >= rng.integers(3, 7):
            break
        t = round(float(rng.uniform(0.3, duration_s - 0.3)) * fps) / fps
        if all(abs(t - u) >= 0.4 for u in times):
            times.append(t)
    return sorted(times)


#: Per-frame speed (fraction of the frame size) after an event: the fastest motion is between frames
#: ``i - 1`` and ``i``, so the flow peaks exactly at the event frame, then dies out; motions are
#: small enough per frame for Farneback to follow.
IMPULSE = (0.08, 0.03)


#: Motions: ``"step"`` (the default): each event pushes the object and it stays there, the direction
#: alternating, so a frame shows the parity of the events before it; ``"jolt"``: each event throws the
#: object ``amplitude`` (a fraction of the frame size) in one frame, and it returns to rest
#: exponentially with time constant ``tau_s`` (seconds), so a frame shows the sound just before it.
#: The flow is largest at the event frame and decreases after it: one flow peak per event (a slower
#: return, tau_s >= 0.1 s, adds spurious flow peaks on its tail; a faster one, 0.03 s, outruns the jump).
MOTIONS = ("step", "jolt")
JOLT = {"amplitude": 0.25, "tau_s": 0.05}


def _position(frame: int, event_frames: list[int], size: int, motion: str = "step", fps: float | None = None,
              amplitude: float = JOLT["amplitude"], tau_s: float = JOLT["tau_s"]) -> float:
    """Displacement (px) at ``frame`` (see :data:`MOTIONS`; ``fps`` is needed for ``"jolt"``)."""
    pos = 0.0
    if motion == "jolt":
        for e in event_frames:
            if frame >= e:
                pos += size * amplitude * float(np.exp(-(frame - e) / (tau_s * fps)))
        return pos
    if motion != "step":
        raise ValueError(f"motion must be one of {MOTIONS}, not {motion!r}")
    for k, e in enumerate(event_frames):
        sign = 1.0 if k % 2 == 0 else -1.0
        pos += sign * size * sum(IMPULSE[: max(0, min(len(IMPULSE), frame - e + 1))])
    return pos


def render_video(label: str, events_s: list[float], fps: float, n_frames: int, size: int,
                 rng: np.random.Generator, motion: str = "step", **jolt) -> np.ndarray:
    """``(n_frames, size, size, 3)`` uint8 RGB frames of one class's motion."""
    background = _texture(rng, size, size, 70, 30)
    s = size // 3
    obj = _texture(rng, s, s, 180, 60)
    event_frames = [int(round(t * fps)) for t in events_s]
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for i in range(n_frames):
        frame = background.copy()
        d = int(round(_position(i, event_frames, size, motion, fps, **jolt)))
        if label == "drum hits":  # a wide drum head jolting down and up
            frame[size // 4 + d: size // 4 + d + s // 2, size // 6: size // 6 + 2 * s] = obj[: s // 2, :].repeat(2, 1)
        elif label == "bouncing ball":  # a ball kicked up and down
            y, x = size // 3 + d, size // 3
            yy, xx = np.ogrid[:s, :s]
            disc = (yy - s / 2) ** 2 + (xx - s / 2) ** 2 <= (s / 2) ** 2
            frame[y: y + s, x: x + s][disc] = obj[disc]
        else:  # two hands snapping together and apart
            gap, half, top = size // 6 - d // 2, s // 4, size // 2 - s // 2
            frame[top: top + s, size // 2 - gap - 2 * half: size // 2 - gap] = obj[:, : 2 * half]
            frame[top: top + s, size // 2 + gap: size // 2 + gap + 2 * half] = obj[:, : 2 * half]
        frames[i] = frame
    return frames


def render_audio(label: str, events_s: list[float], duration_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 mono audio: one sound per event, digital silence between them."""
    y = np.zeros(int(duration_s * sr), np.float32)
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    if label == "drum hits":
        sound = 0.8 * np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.08) + 0.3 * rng.standard_normal(n) * np.exp(-t / 0.01)
    elif label == "bouncing ball":
        sound = 0.6 * np.sin(2 * np.pi * 660 * t) * np.exp(-t / 0.05)
    else:
        sound = 0.7 * rng.standard_normal(n) * np.exp(-t / 0.012)
    sound = sound * np.minimum(1.0, (n - np.arange(n)) / (0.5 * n))  # fade out: no click at the end
    for e in events_s:
        i = int(round(e * sr))
        m = min(n, len(y) - i)
        y[i: i + m] += sound[:m].astype(np.float32)
    return np.clip(y, -1, 1)


def make_synthetic(out_dir: str | os.PathLike, num_clips: int = 24, seed: int = 0, duration_s: float = 4.0,
                   size: int = 96, sample_rate: int = 16000, test_fraction: float = 0.25, motion: str = "step",
                   jolt_amplitude: float = JOLT["amplitude"], jolt_tau_s: float = JOLT["tau_s"],
                   only: Iterable[int] | None = None) -> list[SyntheticClip]:
    """Write ``num_clips`` clips (deterministic for ``seed``); returns their descriptions.

    ``motion`` (:data:`MOTIONS`) and, for ``"jolt"``, ``jolt_amplitude`` and ``jolt_tau_s`` choose
    how an event moves the object; the default ``"step"`` draws exactly the clips it always drew.
    ``only`` (clip indices in ``range(num_clips)``) writes just those clips, byte-identical to the
    same clips of the full set and with the same splits (each clip draws from its own
    ``(seed, index)`` generator); the index files then list just them."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, not {motion!r}")
    jolt = {"amplitude": jolt_amplitude, "tau_s": jolt_tau_s} if motion == "jolt" else {}
    from avalign.io import write_video, write_wav

    out = Path(out_dir)
    (out / "video").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    n_test = max(1, int(round(num_clips * test_fraction))) if num_clips > 1 else 0
    wanted = range(num_clips) if only is None else sorted(set(only))
    if any(not 0 <= k < num_clips for k in wanted):
        raise ValueError(f"only: clip indices must lie in range({num_clips})")
    clips = []
    for k in wanted:
        rng = np.random.default_rng([seed, k])
        label = CLASSES[k % len(CLASSES)]
        fps = FRAME_RATES[(k // len(CLASSES)) % len(FRAME_RATES)]
        events = _event_times(rng, duration_s, fps)
        clip = SyntheticClip(f"syn{k:08d}", label, "test" if k >= num_clips - n_test else "train", fps, tuple(events))
        frames = render_video(label, events, fps, int(round(duration_s * fps)), size, rng, motion, **jolt)
        write_video(out / "video" / f"{clip.clip_id}.mp4", frames, fps)
        write_wav(out / "audio" / f"{clip.clip_id}.wav", render_audio(label, events, duration_s, sample_rate, rng),
                  sample_rate)
        clips.append(clip)
    with open(out / "synthetic.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ytid", "start_time", "class", "set"])
        for c in clips:
            writer.writerow([c.clip_id, 0, c.label, c.split])
    (out / "events.json").write_text(json.dumps(
        {c.clip_id: {"label": c.label, "fps": c.fps, "events_s": list(c.events_s), "split": c.split,
                     **({"motion": motion, **jolt} if motion != "step" else {})} for c in clips},
        indent=1))
    return clips
