"""Where a generated clip's time and memory go: seconds (and CUDA peak memory) per pipeline stage.

>>> profiler = StageProfiler("cuda")
>>> pipe(audio="dog.wav", profiler=profiler)
>>> profiler.to_record()
{"stages_s": {"audio_encoding": 0.03, "prompt_encoding": 0.01, "denoising": 9.8, ...}, "step_s": [...], ...}
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

#: The stages of one clip, in order (``writing`` is timed by whoever writes the files).
STAGES = ("audio_encoding", "prompt_encoding", "denoising", "vae_decoding", "writing")


class StageProfiler:
    """Accumulates wall-clock seconds per named stage and, on CUDA, the peak memory of each.

    On CUDA every stage is bracketed by ``torch.cuda.synchronize`` (so its seconds are the GPU's
    work, not the launch) and starts with ``reset_peak_memory_stats``; ``peak_mem_mb`` is then the
    most memory torch held during that stage (MiB).  :attr:`peak_mb` is the maximum over stages.

    Parameters
    ----------
    device : str or torch.device, optional
        The device the pipeline runs on; memory is only measured on CUDA.
    """

    def __init__(self, device: Any = None):
        self.cuda = str(device or "cpu").startswith("cuda")
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peak_mem_mb: dict[str, float] = {}
        self.step_s: list[float] = []

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed work as stage ``name`` (seconds add up over repeated entries)."""
        import torch

        self._sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            if self.cuda:
                peak = torch.cuda.max_memory_allocated(self.device) / 2**20
                self.peak_mem_mb[name] = max(self.peak_mem_mb.get(name, 0.0), peak)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Time one denoising step (inside the ``denoising`` stage)."""
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.step_s.append(time.perf_counter() - start)

    @property
    def peak_mb(self) -> float | None:
        """Peak CUDA memory over all stages (MiB); None off CUDA."""
        return max(self.peak_mem_mb.values(), default=0.0) if self.cuda else None

    def to_record(self) -> dict[str, Any]:
        """``{stages_s, step_s, stage_peak_mem_mb}`` (the last None off CUDA)."""
        return {"stages_s": dict(self.seconds), "step_s": list(self.step_s),
                "stage_peak_mem_mb": dict(self.peak_mem_mb) if self.cuda else None}


class _Off:
    """The profiler used when none is given: every stage is a no-op."""

    def stage(self, name: str) -> nullcontext:
        return nullcontext()

    def step(self) -> nullcontext:
        return nullcontext()


OFF = _Off()
