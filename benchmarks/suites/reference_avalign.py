"""The authors' AV-Align scorer as a speed baseline, re-implemented from its published description.

It follows the structure of ``av_align.py`` (bf0b1e3) as documented in
``shared/reference/TEMPOTOKENS.md`` §6: one file at a time, ``librosa.load`` at 22,050 Hz, all
frames read with OpenCV, each pair converted to gray anew (every frame twice), the first pair's
flow computed a second time for the duplicated first value, OpenCV's default thread count.
It exists to measure our speed-up on identical results; it is not used for scoring.
"""

from __future__ import annotations

import glob
import os

import cv2
import librosa
import numpy as np


def _audio_peaks(wav: str) -> list[float]:
    y, sr = librosa.load(wav)
    envelope = librosa.onset.onset_strength(y=y, sr=sr)
    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr)
    return list(librosa.frames_to_time(frames, sr=sr))


def _flow(a: np.ndarray, b: np.ndarray) -> float:
    ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
    flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    return float(np.mean(magnitude, dtype=np.float64))


def _video_peaks(mp4: str) -> tuple[list[float], float]:
    cap = cv2.VideoCapture(mp4)
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    trajectory = [_flow(frames[0], frames[1])]
    trajectory += [_flow(frames[i - 1], frames[i]) for i in range(1, len(frames))]
    peaks = [
        i / fps
        for i in range(1, len(trajectory) - 1)
        if trajectory[i - 1] < trajectory[i] > trajectory[i + 1] and trajectory[i] >= 0.1
    ]
    return peaks, fps


def score(mp4: str) -> float | None:
    """IoU of one ``X.mp4`` with its ``X.wav``; None where the authors' script divides by zero."""
    audio = _audio_peaks(mp4[:-4] + ".wav")
    video, fps = _video_peaks(mp4)
    used = [False] * len(video)
    matches = 0
    for a in audio:
        for j, v in enumerate(video):
            if not used[j] and v - 1 / fps < a < v + 1 / fps:
                used[j] = True
                matches += 1
                break
    union = len(audio) + len(video) - matches
    return matches / union if union else None


def score_folder(folder: str) -> dict[str, float | None]:
    """Score every ``*.mp4`` of a folder, one after another."""
    return {os.path.basename(p): score(p) for p in sorted(glob.glob(os.path.join(folder, "*.mp4")))}
