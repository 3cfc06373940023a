"""Silence one false diffusers notice at its source, and nothing else.

``ModelMixin.to(dtype=...)`` warns "There are modules in X that should be kept in float32: [] ..."
for every model whose ``_keep_in_fp32_modules`` is empty (diffusers tests ``[] is not None``), so
casting BEATs or the adaptor printed it once per model and call.  :func:`install` adds a filter to
that logger that drops the notice only when its list is empty; a notice that names modules, and
every other message of the logger, still reaches the user.
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
