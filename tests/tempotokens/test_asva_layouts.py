"""The AVSync15 and The Greatest Hits readers, on stand-ins built here in ASVA's layouts: mp4s with
their own audio track under ``videos/``, split files relative to it, AVSync15's class_mapping.json."""

import json
from pathlib import Path

import numpy as np
import pytest

from avalign.io import write_video
from tempotokens.data.datasets import DatasetError, index_dataset

SR = 16000


def _clip(path: Path, seed: int, seconds: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = rng.integers(0, 255, (int(12 * seconds), 32, 32, 3), dtype=np.uint8)
    write_video(path, frames, 12, rng.uniform(-0.5, 0.5, int(SR * seconds)).astype(np.float32), SR)


@pytest.fixture
def avsync15(tmp_path):
    root = tmp_path / "AVSync15"
    train = ["lions_roaring/a1.mp4", "dog_barking/b1.mp4", "dog_barking/b2.mp4"]
    test = ["lions_roaring/a2.mp4", "hammering/c1.mp4", "dog_barking/missing.mp4"]
    for i, rel in enumerate(train + test[:2]):
        _clip(root / "videos" / rel, i)
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "test.txt").write_text("\n".join(test) + "\n\n")  # a blank line at the end, as files often have
    (root / "class_mapping.json").write_text(json.dumps({"lions_roaring": "lions roaring",
                                                         "dog_barking": "dog barking"}))
    return root


def test_avsync15_splits_classes_and_files(avsync15, caplog):
    test = index_dataset(avsync15, "avsync15", split="test")
    # the split file's order; the missing video is left out, and said so
    assert [c.clip_id for c in test] == ["lions_roaring__a2", "hammering__c1"]
    assert "1 listed videos are not in" in caplog.text
    assert [c.label for c in test] == ["lions roaring", "hammering"]  # mapped; else the category, _ as spaces
    assert test[0].video == str(avsync15 / "videos" / "lions_roaring" / "a2.mp4")
    assert test[0].audio is None and {c.split for c in test} == {"test"}  # the mp4's own track
    train = index_dataset(avsync15, "avsync15", split="train")
    assert [(c.clip_id, c.label) for c in train] == [("lions_roaring__a1", "lions roaring"),
                                                     ("dog_barking__b1", "dog barking"),
                                                     ("dog_barking__b2", "dog barking")]
    both = index_dataset(avsync15, "avsync15", split=None)
    assert len(both) == 5 and [c.split for c in both] == ["train"] * 3 + ["test"] * 2
    for classes in (["dog barking"], ["dog_barking"]):  # the label, or the category's folder name
        assert [c.clip_id for c in index_dataset(avsync15, "avsync15", split="train", classes=classes)] == [
            "dog_barking__b1", "dog_barking__b2"]


def test_greatest_hits(tmp_path):
    root = tmp_path / "TheGreatestHits"
    for i, name in enumerate(["2015-02-16-16-49-06_denoised_thumb", "2015-03-28-19-46-12_denoised_thumb"]):
        _clip(root / "videos" / f"{name}.mp4", i)
    (root / "train.txt").write_text("2015-02-16-16-49-06_denoised_thumb.mp4\n")
    (root / "test.txt").write_text("2015-03-28-19-46-12_denoised_thumb.mp4\n")
    test = index_dataset(root, "greatest_hits", split="test")
    assert [(c.clip_id, c.label, c.split) for c in test] == [
        ("2015-03-28-19-46-12_denoised_thumb", "hitting with a stick", "test")]
    assert len(index_dataset(root, "greatest_hits", split=None)) == 2


@pytest.mark.parametrize("line, words", [("lions_roaring/a1.wav", "expected a relative path to an .mp4"),
                                         ("a1.mp4", "expected <category>/<name>.mp4"),
                                         ("../x/a1.mp4", "expected a relative path"),
                                         ("lions_roaring/a2.mp4\nlions_roaring/a2.mp4", "listed twice"),
                                         ("dog_barking/gone.mp4\ndog_barking/gone.mp4", "listed twice"),
                                         ("dog_barking/b1.mp4", "listed twice \\(also in another split file")])
def test_bad_split_lines_are_one_line_naming_the_file(avsync15, line, words):
    (avsync15 / "test.txt").write_text(line + "\n")
    with pytest.raises(DatasetError, match=words) as err:
        index_dataset(avsync15, "avsync15", split=None)
    assert "test.txt" in str(err.value) or "listed twice" in str(err.value)


def test_missing_pieces_are_one_line(tmp_path, avsync15):
    with pytest.raises(DatasetError, match="videos: not found"):
        index_dataset(tmp_path, "greatest_hits", split="test")
    (avsync15 / "test.txt").unlink()
    with pytest.raises(DatasetError, match=r"test.txt: split file not found"):
        index_dataset(avsync15, "avsync15", split="test")
    (avsync15 / "class_mapping.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="class_mapping.json: not a JSON object"):
        index_dataset(avsync15, "avsync15", split="train")


def test_a_benchmark_runs_on_the_avsync15_layout(avsync15, tmp_path):
    """The copying rows of a benchmark run on the stand-in: the real clip is the ground truth."""
    import csv

    from benchmarks.run import main

    out = tmp_path / "run"
    assert main(["--dataset", "avsync15", "--data-root", str(avsync15), "--out", str(out), "--model", "tiny",
                 "--methods", "ground_truth,static_frame", "--num-frames", "12", "--fps", "12", "--size", "32x32",
                 "--workers", "1"]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert rows["ground_truth"]["n"] == "2" and rows["ground_truth"]["dataset"] == "avsync15"
    assert sorted(p.name for p in (out / "clips" / "ground_truth").glob("*.mp4")) == [
        "hammering__c1.mp4", "lions_roaring__a2.mp4"]
