"""The shared media layer: reading and writing clips, audio and records.

Everything the metric, the generator, the datasets, the methods and the benchmark read or write
goes through here; it holds no metric logic and imports nothing else of the project.

* :mod:`~avalign.io.files`: file names (:data:`VIDEO_EXTENSIONS`, partial files), :class:`MediaError`
  (a bad input) and :class:`DiskFullError` (a fatal output problem);
* :mod:`~avalign.io.atomic`: the one write-then-rename helper (fsynced);
* :mod:`~avalign.io.video`: OpenCV decoding (capture, frames, rate and count);
* :mod:`~avalign.io.audio`: reading and loading audio;
* :mod:`~avalign.io.write`: writing wav, mp4 and the clip pair;
* :mod:`~avalign.io.jsonl`: append-only JSONL records that survive ``kill -9``;
* :mod:`~avalign.io.lock`: one live run per output;
* :mod:`~avalign.io.claim`: an output folder's identity (the settings its records were made with).
"""

from .atomic import (atomic_path, build_once, publish_dir, save_figure, write_bytes_atomic, write_json_atomic,
                     write_text_atomic)
from .claim import FolderClaimError, claim_folder, differences, settings_hash
from .audio import load_audio, read_audio, resample_exact, to_mono_resampled
from .files import (VIDEO_EXTENSIONS, DiskFullError, MediaError, disk_full, is_disk_full, is_partial,
                    sibling_wav)
from .jsonl import JsonlWriter, read_jsonl, rewrite_jsonl
from .lock import LockedError, RunLock, lock_output
from .video import decoded_frames, open_capture, probe_video, read_video_frames
from .write import write_clip, write_video, write_wav

__all__ = [
    "DiskFullError", "FolderClaimError", "JsonlWriter", "LockedError", "MediaError", "RunLock", "VIDEO_EXTENSIONS", "atomic_path",
    "build_once", "claim_folder", "decoded_frames", "differences", "disk_full", "is_disk_full", "is_partial", "load_audio", "lock_output",
    "open_capture", "probe_video", "publish_dir", "read_audio", "read_jsonl", "read_video_frames",
    "resample_exact", "rewrite_jsonl", "save_figure", "settings_hash", "sibling_wav", "to_mono_resampled",
    "write_bytes_atomic", "write_clip", "write_json_atomic", "write_text_atomic", "write_video", "write_wav",
]
