"""Silence one false diffusers notice at its source, and the libraries' loading bars where ours say more.

``ModelMixin.to(dtype=...)`` warns "There are modules in X that should be kept in float32: [] ..."
for every model whose ``_keep_in_fp32_modules`` is empty (diffusers tests ``[] is not None``), so
casting BEATs or the adaptor printed it once per model and call.  :func:`install` adds a filter to
that logger that drops the notice only when its list is empty; a notice that names modules, and
every other message of the logger, still reaches the user.

:func:`no_loading_bars` turns off diffusers' and transformers' own progress bars ("Loading pipeline
components", "Loading weights", "Writing model shards"): the benchmark runner loads a method per
process and shows its own per-clip bar, so theirs were a dozen lines of noise in ``make demo``.
Their warnings and errors are untouched.
"""

from __future__ import annotations

import logging

LOGGER = "diffusers.models.modeling_utils"


class EmptyFp32Notice(logging.Filter):
    """Drops the float32 notice whose module list is empty."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("that should be kept in float32: []" in message)


def install() -> None:
    """Add the filter once (idempotent)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, EmptyFp32Notice) for f in logger.filters):
        logger.addFilter(EmptyFp32Notice())


def no_loading_bars() -> None:
    """Turn off diffusers' and transformers' progress bars in this process (their logs stay)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover - transformers is a dependency of diffusers' text models
        return
    transformers_logging.disable_progress_bar()
