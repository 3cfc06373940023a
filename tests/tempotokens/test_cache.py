"""The training feature cache: keyed by what produced the features, so changed settings miss it."""

import json

import pytest

from tests.fixtures.training import tiny_train_config

CACHED = {"cache.beats_features": True, "cache.vae_latents": True, "data.random_start": False, "max_steps": 2,
          "checkpointing_steps": 2}


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def other_beats(tmp_path_factory):
    """A second tiny model: same architecture, other random weights (another checkpoint)."""
    from tempotokens.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny-seed-1"), seed=1)


def test_same_settings_hit_and_equal_fresh_features(tiny_dir, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    cache = tmp_path / "cache"
    plain = tiny_train_config(tiny_dir, synthetic_root, tmp_path / "plain", **{**CACHED, "cache.beats_features": False,
                                                                             "cache.vae_latents": False})
    Trainer(plain).run()
    first = Trainer(tiny_train_config(tiny_dir, synthetic_root, tmp_path / "a", **CACHED, **{"cache.dir": cache}))
    first.run()
    assert first.cache.hits == 0 and first.cache.misses > 0
    again = Trainer(tiny_train_config(tiny_dir, synthetic_root, tmp_path / "b", **CACHED, **{"cache.dir": cache}))
    again.run()
    assert again.cache.misses == 0 and again.cache.hits == first.cache.misses
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b") == _losses(tmp_path / "plain")
    for kind, model in (("beats", first.pipe.beats), ("vae", first.pipe.vae)):
        folders = [p for p in (cache / kind).iterdir() if p.is_dir()]
        assert len(folders) == 1
        made_by = json.loads((folders[0] / "producer.json").read_text())
        assert made_by["model"] == type(model).__name__ and made_by["fps"] == first.cfg.data.fps


# one of the three in the quick suite; CI runs all (each trains twice: ~15 s on 2 cores)
@pytest.mark.parametrize("change", ["checkpoint", pytest.param("fps", marks=pytest.mark.slow),
                                    pytest.param("size", marks=pytest.mark.slow)])
def test_a_changed_producer_misses(change, tiny_dir, other_beats, synthetic_root, tmp_path):
    from tempotokens.training.loop import Trainer

    cache = tmp_path / "cache"
    base = {**CACHED, "cache.dir": cache}
    Trainer(tiny_train_config(tiny_dir, synthetic_root, tmp_path / "a", **base)).run()
    model, over = tiny_dir, {}
    if change == "checkpoint":
        over = {"beats": other_beats / "beats_tiny.pt"}  # the same clips, another BEATs
    elif change == "fps":
        over = {"data.fps": 10}
    else:
        over = {"data.height": 16, "data.width": 16, "validation.height": 16, "validation.width": 16}
    second = Trainer(tiny_train_config(model, synthetic_root, tmp_path / "b", **base, **over))
    second.run()
    missed = {"checkpoint": {"beats"}, "fps": {"beats", "vae"}, "size": {"vae"}}[change]
    for kind in ("beats", "vae"):
        folders = [p for p in (cache / kind).iterdir() if p.is_dir()]
        assert len(folders) == (2 if kind in missed else 1), (kind, change)
    assert second.cache.misses > 0
