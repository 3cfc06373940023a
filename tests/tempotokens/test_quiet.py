"""tempotokens.quiet: the empty float32 notice of diffusers is gone, real warnings are not."""

from __future__ import annotations

import logging

import torch

from tempotokens.quiet import LOGGER


class _Catch(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _cast_messages(model, keep) -> list[str]:
    logger = logging.getLogger(LOGGER)
    catch = _Catch()
    logger.addHandler(catch)
    try:
        model._keep_in_fp32_modules = keep
        model.to(dtype=torch.float32)
        logger.warning("an unrelated warning of the same logger")
    finally:
        logger.removeHandler(catch)
    return catch.messages


def test_casting_beats_says_nothing_but_a_real_fp32_warning_still_surfaces(tiny_pipe):
    beats = tiny_pipe.beats
    quiet = _cast_messages(beats, [])
    assert quiet == ["an unrelated warning of the same logger"]  # the empty notice is dropped, nothing else
    loud = _cast_messages(beats, ["encoder"])
    assert any("should be kept in float32: ['encoder']" in m for m in loud)
    beats._keep_in_fp32_modules = None


def test_the_adaptor_too(tiny_pipe):
    assert _cast_messages(tiny_pipe.adaptor, []) == ["an unrelated warning of the same logger"]
    tiny_pipe.adaptor._keep_in_fp32_modules = None


def test_no_loading_bars_turns_off_the_libraries_bars_and_keeps_their_warnings(monkeypatch):
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from tempotokens.quiet import no_loading_bars

    diffusers_logging.enable_progress_bar()
    transformers_logging.enable_progress_bar()
    try:
        no_loading_bars()
        assert not diffusers_logging.is_progress_bar_enabled()
        assert not transformers_logging.is_progress_bar_enabled()
        # their logs are not touched: a warning still goes out
        assert diffusers_logging.get_verbosity() <= logging.WARNING
        assert transformers_logging.get_verbosity() <= logging.WARNING
    finally:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
