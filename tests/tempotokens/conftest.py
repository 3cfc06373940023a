"""Fixtures of the generator and trainer tests."""

import pytest


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """Six 2 s synthetic clips at 32 px (4 train, 2 test), fresh for each test module."""
    from tempotokens.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("syn")
    make_synthetic(root, num_clips=6, seed=0, duration_s=2.0, size=32)
    return root
