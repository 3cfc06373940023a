"""``external:DIR``: another system's generated videos, matched by clip id.

``DIR/<clip_id>.mp4`` is scored as it is: with ``DIR/<clip_id>.wav`` when present, else with its
own audio track (how users compare TPoS, MM-Diffusion or their own model).  Nothing is copied.
"""

from __future__ import annotations

from pathlib import Path

from avalign.media import MediaError
from tempotokens.data.datasets import ClipInfo

from . import RunContext


class External:
    generative = False

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.name = f"external:{self.folder.name}"

    def load(self, ctx: RunContext) -> None:
        if not self.folder.is_dir():
            raise MediaError(self.folder, "external method folder not found")
        return None

    def generate(self, clip: ClipInfo, out_mp4: Path, ctx: RunContext) -> Path:
        video = self.folder / f"{clip.clip_id}.mp4"
        if not video.is_file():
            raise MediaError(video, f"no video for clip {clip.clip_id} in the external folder")
        return video
