"""Fixtures of the video-quality metric tests: a folder of tiny stand-in weights in the published formats."""

import pytest


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    from tests.fixtures.weights import make_tiny_weights

    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def sync_tensors():
    """The sync conformance fixture's expected and intermediate tensors."""
    from tests.fixtures.sync import reference_tensors

    return reference_tensors()
