"""The records and table rows a benchmark run writes, as frozen dataclasses.

Every file of a run folder is made of these, one JSON object per record:

* :class:`GenerationRecord` (``generate-<rank>.jsonl``): a method's clip, or why it has none;
* :class:`ScoreRecord` (``records.jsonl``): a clip's AV-Align, under the run's protocol;
* :class:`MetricRecord` (``metrics.jsonl``): a method's FVD, IS or CLIPSIM;
* :class:`SyncRecord` (``sync.jsonl``): a clip's DeSync or IB-score, or why it has none;
* :class:`LoadProfile` and :class:`ClipProfile` (``profiles-<rank>.jsonl``): where a generating
  method's time (and GPU memory) went;
* :class:`SummaryRow` (``summary.csv``): one row per method; its fields are the CSV's columns.

``to_record()`` gives the JSON object (every field, in field order); ``from_record()`` reads one
back (a field an older file lacks takes its default; keys it does not know are ignored).  The docs'
schema tables are generated from the ``#:`` notes beside the fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """``to_record`` / ``from_record`` for the dataclasses below."""

    FILE: ClassVar[str] = ""

    def to_record(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_record(cls: type[R], record: dict[str, Any], strict: bool = False) -> R:
        """The record of a JSON object; a key it does not know is ignored (an older or newer file),
        or, with ``strict`` (what a writer builds), refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - names)
        if strict and unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
        return cls(**{k: v for k, v in record.items() if k in names})

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class ClipKey(Record):
    """What every per-clip record of a method shares."""

    clip_id: str  #: the dataset's id of the test clip
    method: str  #: the method's name (``external:DIR`` is named by DIR's last folder)
    role: str = "compared"  #: compared, ceiling, chance or floor
    generative: bool = False  #: the method runs a model (its time and memory are measured)
    seed: int | None = None  #: the clip's generation seed: the run's seed + the clip's index
    seconds: float | None = None  #: wall time of generating (or copying) the clip, s
    peak_mem_mb: float | None = None  #: peak memory while generating it, MiB (CPU: VmHWM; GPU: torch)
    num_frames: int | None = None  #: frames generated per clip
    device: str | None = None  #: the device it was generated on
    settings_hash: str | None = None  #: the run folder's settings hash (``settings.json``)
    attempt: str | None = None  #: id of this generation attempt (a regenerated clip is rescored)


@dataclass(frozen=True)
class GenerationRecord(ClipKey):
    """One line of ``generate-<rank>.jsonl``."""

    FILE: ClassVar[str] = "generate-<rank>.jsonl"
    video: str | None = None  #: the clip's mp4 (None on error)
    audio: str | None = None  #: its wav (None: scored with the mp4's own track)
    source: str | None = None  #: for ``external:DIR``, the folder the clips came from
    status: str = "ok"  #: ok or error
    error: str | None = None  #: why there is no clip (one line)


@dataclass(frozen=True)
class ScoreRecord(ClipKey):
    """One line of ``records.jsonl``."""

    FILE: ClassVar[str] = "records.jsonl"
    status: str = "ok"  #: ok, undefined (no peak in either stream) or error
    error: str | None = None  #: why the clip has no score (one line)
    avalign: dict | None = None  #: the AV-Align record: score, peaks, matches, protocol, variant, flow, envelope


@dataclass(frozen=True)
class MetricRecord(Record):
    """One line of ``metrics.jsonl``: a method's value of one video-quality metric."""

    FILE: ClassVar[str] = "metrics.jsonl"
    method: str  #: the method's name
    metric: str  #: fvd, is or clipsim
    inputs: str  #: digest of the (clip, attempt) pairs it was computed on
    n_clips: int  #: clips the method has
    kind: str  #: the feature extractor: fvd, is or clipsim
    frames_per_clip: int | None  #: frames fed to the metric per clip (None: all)
    weights: str  #: the weight file used
    weights_sha256: str  #: its digest (16 hex digits)
    protocol: dict  #: the evaluation protocol the clips were conformed to (fps, size, span)
    value: float | None = None  #: the metric's value (None on error)
    n: int | None = None  #: clips that entered the value
    fvd_lineage: str | None = None  #: FVD's published computation (styleganv, videogpt)
    std: float | None = None  #: IS: standard deviation over splits
    splits: int | None = None  #: IS: splits
    ci_low: float | None = None  #: CLIPSIM: 95% bootstrap CI, low
    ci_high: float | None = None  #: CLIPSIM: 95% bootstrap CI, high
    template: str | None = None  #: CLIPSIM: the text each label is put through
    error: str | None = None  #: why there is no value (one line)
    warnings: list | None = None  #: notes (e.g. N below 2048 for FVD)


@dataclass(frozen=True)
class SyncRecord(Record):
    """One line of ``sync.jsonl``: one clip's DeSync or IB-score (:mod:`benchmarks.metrics.syncstage`)."""

    FILE: ClassVar[str] = "sync.jsonl"
    method: str  #: the method's name
    clip_id: str  #: the dataset's id of the test clip
    attempt: str | None  #: the generation attempt scored (a regenerated clip is rescored)
    role: str  #: compared, ceiling, chance or floor
    metric: str  #: desync or ib
    lineage: str  #: the metric's published computation (desync: avbench, synchformer; ib: avbench, javisbench)
    short: str  #: the short-clip policy: error (not_applicable) or pad (JavisBench's repetition)
    duration_s: float | None  #: the clip length L scored, s (the run's span; None: each clip's own)
    weights_sha256: str  #: digest of the weight file
    status: str  #: ok, not_applicable (shorter than the lineage needs) or error
    value: float | None = None  #: desync: mean abs offset, s (lower is better); ib: cosine in [-1, 1] (higher)
    error: str | None = None  #: why there is no value (one line)
    offsets_s: list | None = None  #: desync: each window's signed offset, s (positive: audio earlier)
    expected_offsets_s: list | None = None  #: desync: each window's softmax-expected offset, s
    logits: list | None = None  #: desync: each window's 21 offset logits
    n_views: int | None = None  #: ib: video views averaged
    padded: bool | None = None  #: scored from a padded clip (``short=pad``)
    dtype: str | None = None  #: desync: the model's dtype (float16 only for lineage synchformer on a GPU)


@dataclass(frozen=True)
class ProfileKey(Record):
    """What every line of ``profiles-<rank>.jsonl`` shares."""

    FILE: ClassVar[str] = "profiles-<rank>.jsonl"
    method: str  #: the method's name
    rank: int  #: the process's rank
    settings_hash: str  #: the run folder's settings hash


@dataclass(frozen=True)
class LoadProfile(ProfileKey):
    """A ``load`` line of ``profiles-<rank>.jsonl``: loading a generating method."""

    device: str  #: the device it was loaded on
    load_s: float  #: seconds to load its models
    load_mem_mb: float  #: memory held after loading, MiB
    kind: str = "load"  #: load


@dataclass(frozen=True)
class ClipProfile(ProfileKey):
    """A ``clip`` line of ``profiles-<rank>.jsonl``: where one clip's time went."""

    clip_id: str  #: the clip
    stages_s: dict  #: seconds per stage: audio_encoding, prompt_encoding, denoising, vae_decoding, writing
    step_s: list  #: seconds of each denoising step
    stage_peak_mem_mb: dict | None = None  #: GPU only: peak MiB per stage
    kind: str = "clip"  #: clip


@dataclass(frozen=True)
class SummaryRow(Record):
    """One row of ``summary.csv`` (one per method); the fields are the CSV's columns, in order."""

    FILE: ClassVar[str] = "summary.csv"
    dataset: str  #: the dataset
    method: str  #: the method
    role: str  #: compared, ceiling, chance or floor
    protocol: str  #: the evaluation protocol every row is scored under (e.g. "12 fps, 32x32 px, 2 s")
    variant: str  #: the AV-Align variant
    n: int  #: clips
    n_undefined: int  #: clips with no peak in either stream
    n_error: int  #: clips that failed
    n_scored: int  #: clips with a score
    av_align: float | None = None  #: mean AV-Align of the scored clips
    av_align_ci_low: float | None = None  #: its 95% bootstrap CI, low
    av_align_ci_high: float | None = None  #: its 95% bootstrap CI, high
    fvd: float | None = None  #: FVD against the ground truth of the same clips
    fvd_n: int | None = None  #: clips per side
    fvd_lineage: str | None = None  #: FVD's lineage and frames per clip
    is_: float | None = None  #: Inception Score (column ``is``)
    is_std: float | None = None  #: its standard deviation over splits
    is_n: int | None = None  #: clips
    clipsim: float | None = None  #: CLIPSIM
    clipsim_ci_low: float | None = None  #: its 95% bootstrap CI, low
    clipsim_ci_high: float | None = None  #: its 95% bootstrap CI, high
    clipsim_n: int | None = None  #: clips
    desync: float | None = None  #: DeSync of the clips it applies to: mean over their windows, s (lower is better)
    desync_ci_low: float | None = None  #: its 95% bootstrap CI, low
    desync_ci_high: float | None = None  #: its 95% bootstrap CI, high
    desync_n: int | None = None  #: clips scored
    desync_na: int | None = None  #: clips it does not apply to (shorter than its lineage needs)
    desync_err: int | None = None  #: clips whose DeSync failed (their records say why)
    desync_lineage: str | None = None  #: its lineage, short-clip policy and clip length
    desync_note: str | None = None  #: why clips are not applicable (the table's footnote)
    ib: float | None = None  #: mean IB-score, cosine in [-1, 1] (higher is better)
    ib_ci_low: float | None = None  #: its 95% bootstrap CI, low
    ib_ci_high: float | None = None  #: its 95% bootstrap CI, high
    ib_n: int | None = None  #: clips scored
    ib_na: int | None = None  #: clips it does not apply to
    ib_err: int | None = None  #: clips whose IB-score failed
    ib_lineage: str | None = None  #: its lineage, short-clip policy and clip length
    ib_note: str | None = None  #: why clips are not applicable (the table's footnote)
    reference: str | None = None  #: the method the paired deltas are taken against
    n_paired: int | None = None  #: clips scored by both
    delta: float | None = None  #: mean paired AV-Align difference to the reference
    delta_ci_low: float | None = None  #: its 95% paired bootstrap CI, low
    delta_ci_high: float | None = None  #: its 95% paired bootstrap CI, high
    load_s: float | None = None  #: seconds to load the method (generating methods)
    load_mem_mb: float | None = None  #: memory after loading, MiB
    peak_mem_mb: float | None = None  #: peak memory over its clips, MiB
    s_per_clip_p50: float | None = None  #: median seconds per clip
    s_per_clip_p90: float | None = None  #: 90th percentile seconds per clip
    frames_per_s: float | None = None  #: frames generated per second
    clips_per_hour: float | None = None  #: clips generated per hour
    device: str | None = None  #: the device

    #: ``is`` is a Python keyword: the field is ``is_``, the column ``is``.
    RENAMES: ClassVar[dict[str, str]] = {"is_": "is"}

    def to_record(self) -> dict[str, Any]:
        return {self.RENAMES.get(k, k): v for k, v in super().to_record().items()}

    @classmethod
    def from_record(cls, record: dict[str, Any], strict: bool = False) -> "SummaryRow":
        back = {v: k for k, v in cls.RENAMES.items()}
        return super().from_record({back.get(k, k): v for k, v in record.items()}, strict)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(cls.RENAMES.get(n, n) for n in super().columns())


RECORDS = (GenerationRecord, ScoreRecord, MetricRecord, SyncRecord, LoadProfile, ClipProfile, SummaryRow)
