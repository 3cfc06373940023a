"""``tempotokens_other_audio``: the ``tempotokens`` clips scored against another test clip's audio: chance.

The control of the generator's claim.  Clip ``i``'s generated video is paired with the audio span of
clip ``perm[i]``, the same seeded derangement as ``shuffled_audio`` uses, so the two chance rows pair
the same clips.  If ``tempotokens`` beat ``text_to_video`` only because it moves more, this row would
score as high as ``tempotokens``; if the gain comes from timing, it sits at chance with
``shuffled_audio``.

It reads the ``tempotokens`` clips of the same run folder, so that method must have run first (the
runner orders methods that declare ``needs`` after the others); the video file is copied byte for
byte and the donor's audio written beside it as ``X.wav``, which is what the clip is scored against.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from avalign.io import atomic_path, write_wav
from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span
from .shuffled_audio import derangement

SOURCE = "tempotokens"


class TempoTokensOtherAudio:
    name = "tempotokens_other_audio"
    role = "chance"
    generative = False
    #: methods whose clips this one reads (from the same run folder)
    needs = (SOURCE,)

    def load(self, ctx: RunContext) -> None:
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        source = out_mp4.parent.parent / SOURCE / f"{clip.clip_id}.mp4"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no {SOURCE} clip to pair with another clip's audio "
                                    f"(run {SOURCE} in the same --out first)")
        ids = [c.clip_id for c in ctx.clips]
        donor = ctx.clips[derangement(len(ids), ctx.settings.seed)[ids.index(clip.clip_id)]]
        audio, sr = audio_span(donor, ctx.settings.duration_s)
        wav = out_mp4.with_suffix(".wav")
        with atomic_path(wav) as tmp:  # the wav first: an mp4 that exists has its wav
            write_wav(tmp, audio, sr)
        with atomic_path(out_mp4) as tmp:
            shutil.copyfile(source, tmp)
        return Output(out_mp4, wav)
