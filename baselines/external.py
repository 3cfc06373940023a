"""``external:DIR``: another system's generated videos, matched by clip id.

``DIR/<clip_id>.mp4`` is scored as it is (nothing is copied or re-encoded), against the dataset
clip's own audio span, like every other row: that span is written to the run folder as
``clips/external_<name>/<clip_id>.wav``.  ``external:DIR:own-audio`` scores each video against its
own audio instead (``DIR/<clip_id>.wav`` when present, else its audio track), and its row's name
says so.  This is how users compare TPoS, MM-Diffusion or their own model.
"""

from __future__ import annotations

from pathlib import Path

from avalign.io import MediaError, atomic_path, write_wav
from tempotokens.data.datasets import ClipInfo

from . import Output, RunContext, audio_span

OWN_AUDIO = ":own-audio"


class External:
    role = "compared"
    generative = False

    def __init__(self, folder: str, own_audio: bool = False):
        self.folder = Path(folder)
        self.own_audio = own_audio
        self.name = f"external:{self.folder.name}" + (OWN_AUDIO if own_audio else "")

    def load(self, ctx: RunContext) -> None:
        if not self.folder.is_dir():
            raise MediaError(self.folder, "external method folder not found")
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Output:
        video = self.folder / f"{clip.clip_id}.mp4"
        if not video.is_file():
            raise MediaError(video, f"no video for clip {clip.clip_id} in the external folder")
        if self.own_audio:
            return Output(video)
        audio, sr = audio_span(clip, ctx.settings.duration_s)
        wav = out_mp4.with_suffix(".wav")
        with atomic_path(wav) as tmp:
            write_wav(tmp, audio, sr)
        return Output(video, wav)
