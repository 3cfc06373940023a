"""Tiny random-weight models, built offline once per session."""

import pytest


@pytest.fixture(scope="session")
def tiny_pipe():
    from tempotokens.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from tempotokens.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)
