"""``benchmarks.run --metrics av_align,desync,ib``: the DeSync and IB columns, their "—" cells for
clips shorter than a lineage needs, decoding once per rule and loading each model once."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avalign.io import read_jsonl
from benchmarks.records import SyncRecord
from benchmarks.run import main

from tests.fixtures.sync import SYNC

WEIGHTS = SYNC / "weights"
#: 2 s clips (24 frames at 12 fps): shorter than DeSync's 4.8 s and IB avbench's 4 s
SHORT = ["--num-frames", "24", "--fps", "12", "--size", "32x32", "--workers", "2"]
#: 5 s clips: one DeSync window of 14 segments (4.8 s) and two frames at 0.5 fps fit
LONG = ["--num-frames", "60", "--fps", "12", "--size", "32x32", "--workers", "2"]
COPIES = "ground_truth,shuffled_audio,static_frame"  # ceiling, chance, floor: no model to run


def _rows(run: Path) -> dict[str, dict]:
    return {r["method"]: r for r in csv.DictReader(open(run / "summary.csv"))}


@pytest.fixture(scope="module")
def long_root(tmp_path_factory):
    from tempotokens.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("sync-data")
    make_synthetic(root, num_clips=12, seed=1, duration_s=6.0, size=48)  # 3 test clips of 6 s
    return root


def _args(root, out, span):
    return ["--data-root", str(root), "--model", "tiny", "--out", str(out), *span, "--methods", COPIES,
            "--metrics", "av_align,desync,ib", "--weights", str(WEIGHTS)]


def test_short_clips_are_not_applicable_a_dash_and_a_footnote(long_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(long_root, out, SHORT)) == 0  # not applicable is not a failure
    printed = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == set(COPIES.split(","))
    for r in rows.values():
        assert r["desync"] == "" and r["desync_na"] == "3" and r["desync_n"] == "0"
        assert r["ib"] == "" and r["ib_na"] == "3" and r["ib_n"] == "0"
        assert "fewer than the 14 of one window" in r["desync_note"]
        assert "fewer than the 2 a view needs (4 s)" in r["ib_note"]
        assert r["desync_lineage"] == "avbench, L = 2 s, short clips: not applicable"
        assert r["av_align"] != ""  # AV-Align has no such limit
    assert "DeSync↓" in printed and "IB↑" in printed and "—*" in printed and "—**" in printed
    assert "* DeSync not applicable (avbench, L = 2 s, short clips: not applicable): 5 segments, fewer than the 14 of one window (4.80 s)" in printed  # (50 - 16) // 8 + 1
    records = read_jsonl(out / "sync.jsonl")
    assert len(records) == 3 * 3 * 2 and {r["status"] for r in records} == {"not_applicable"}
    assert all(SyncRecord.from_record(r, strict=True).to_record() == r for r in records)
    assert {r["value"] for r in records} == {None}
    from reports.__main__ import main as report_main

    assert report_main([str(out), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "table.md").read_text()
    assert "DeSync ↓" in md and "IB ↑" in md and "| —\\* |" in md
    assert "DeSync (s): avbench, L = 2 s, short clips: not applicable" in md  # the caption names the protocol
    assert "\\* DeSync not applicable (avbench, L = 2 s" in md and "\\*\\* IB-score not applicable" in md


@pytest.mark.slow
def test_padded_short_clips_equal_the_standalone_command(long_root, tmp_path, capsys):
    """``--short pad``: every clip's value is the ``benchmarks.metrics`` command's on the same files at
    the same L (the conformance-tested path), and the row mean is the mean of those."""
    from benchmarks.metrics.cli import main as metrics_main

    out = tmp_path / "run"
    assert main([*_args(long_root, out, SHORT), "--short", "pad"]) == 0
    rows = _rows(out)
    records = {(r["method"], r["clip_id"], r["metric"]): r for r in read_jsonl(out / "sync.jsonl")}
    for metric, key in (("desync", "desync"), ("ib", "ib_score")):
        folder = out / "clips" / "shuffled_audio"
        assert metrics_main([metric, str(folder), "--weights", str(WEIGHTS), "--duration", "2", "--short", "pad",
                             "--out", str(tmp_path / f"{metric}.jsonl")]) == 0
        standalone = {Path(r["video"]).stem: r[key] for r in read_jsonl(tmp_path / f"{metric}.jsonl")}
        mine = {c: r["value"] for (m, c, k), r in records.items() if m == "shuffled_audio" and k == metric}
        assert mine == standalone and len(mine) == 3
        assert float(rows["shuffled_audio"][metric]) == pytest.approx(sum(mine.values()) / 3, rel=1e-5)
        assert rows["shuffled_audio"][f"{metric}_lineage"] == "avbench, L = 2 s, short clips: padded"
        assert rows["shuffled_audio"][f"{metric}_note"] == ""
    assert all(r["padded"] for r in records.values())


@pytest.mark.slow
def test_long_clips_are_scored_decoded_once_per_rule_and_resumed(long_root, tmp_path, monkeypatch, capsys):
    from benchmarks.metrics import avdecode, weights

    decoded, loaded = [], []
    real_decode, real_load = avdecode.decode_at_rate, weights.load_synchformer
    monkeypatch.setattr(avdecode, "decode_at_rate", lambda v, r: decoded.append((str(v), r)) or real_decode(v, r))
    monkeypatch.setattr(weights, "load_synchformer", lambda w: loaded.append(w) or real_load(w))
    monkeypatch.setattr(weights, "_SYNC_MODELS", {})
    out = tmp_path / "run"
    assert main(_args(long_root, out, LONG)) == 0
    assert len(loaded) == 1  # checked before any work, then scored with, the same model
    assert sorted(decoded) == sorted(set(decoded)) and len(decoded) == 9 * 2  # 9 clips x (25 fps, 0.5 fps)
    rows = _rows(out)
    for r in rows.values():
        assert r["desync_n"] == "3" and r["desync_na"] == "0" and r["desync_note"] == ""
        assert r["ib_n"] == "3" and float(r["ib_ci_low"]) <= float(r["ib"]) <= float(r["ib_ci_high"])
        assert 0 <= float(r["desync"]) <= 2 and -1 <= float(r["ib"]) <= 1
    records = read_jsonl(out / "sync.jsonl")
    desync = [r for r in records if r["metric"] == "desync"]
    # 125 frames at 25 fps: (125 - 16) // 8 + 1 = 14 segments; avbench scores the first and the last
    # window all the same (here both are segments 0..13)
    assert all(len(r["offsets_s"]) == len(r["logits"]) == 2 and len(r["logits"][0]) == 21 for r in desync)
    # the ground-truth row's clip is the dataset clip re-encoded at the run's protocol: its value is
    # what the command gives on the run's own file, at L = 5 s
    from benchmarks.metrics.cli import main as metrics_main

    assert metrics_main(["desync", str(out / "clips" / "ground_truth"), "--weights", str(WEIGHTS), "--duration", "5",
                         "--out", str(tmp_path / "d.jsonl")]) == 0
    standalone = sorted(r["desync"] for r in read_jsonl(tmp_path / "d.jsonl"))
    assert sorted(r["value"] for r in desync if r["method"] == "ground_truth") == standalone
    before = (out / "sync.jsonl").read_bytes()
    decoded.clear()
    assert main(_args(long_root, out, LONG)) == 0  # a rerun scores nothing again
    assert (out / "sync.jsonl").read_bytes() == before and decoded == []


def test_a_missing_or_wrong_weights_file_is_one_line_before_anything_runs(long_root, tmp_path, capsys):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(WEIGHTS / "imagebind_huge.pth", wrong / "synchformer_state_dict.pth")  # the other metric's file
    for folder, words in ((tmp_path / "empty", "synchformer_state_dict.pth: not found"),
                          (wrong, "synchformer_state_dict.pth")):
        folder.mkdir(exist_ok=True)
        out = tmp_path / f"out-{folder.name}"
        argv = ["--data-root", str(long_root), "--out", str(out), "--model", "tiny", *SHORT,
                "--methods", "ground_truth", "--metrics", "av_align,desync", "--weights", str(folder)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "Traceback" not in err[0], err
        assert not out.exists()


def test_failures_regenerated_clips_other_weights_and_a_summarize_only_rerun(long_root, tmp_path, capsys):
    """A clip that cannot be decoded is an error record, the run exits 1 and the cell says so; a
    regenerated clip is scored again; records of other weights are kept apart, never averaged in;
    ``--stages summarize`` without ``--metrics`` keeps the columns."""
    out = tmp_path / "run"
    base = ["--data-root", str(long_root), "--model", "tiny", "--out", str(out), *SHORT, "--methods", "ground_truth"]
    assert main(base) == 0  # AV-Align only
    broken = sorted((out / "clips" / "ground_truth").glob("*.mp4"))[0]
    broken.write_bytes(b"not a video")
    sync = [*base, "--metrics", "av_align,desync,ib", "--weights", str(WEIGHTS), "--stages", "metrics,summarize"]
    assert main(sync) == 1
    row = _rows(out)["ground_truth"]
    assert (row["desync_err"], row["desync_na"], row["ib_err"]) == ("1", "2", "1")
    records = read_jsonl(out / "sync.jsonl")
    bad = [r for r in records if r["clip_id"] == broken.stem]
    assert {r["status"] for r in bad} == {"error"} and str(broken) not in bad[0]["error"]
    from reports.tables import read_summary, write_tables  # (the report's filmstrips would need the clip)

    assert "—\\* (1 failed)" in write_tables(read_summary(out / "summary.csv"), tmp_path / "report")["md"].read_text()
    # the clip regenerated (a new attempt): scored again, and no longer failing
    from avalign.io import write_video

    gen = out / "generate-0.jsonl"
    recs = read_jsonl(gen)
    mine = next(i for i, r in enumerate(recs) if r["clip_id"] == broken.stem)
    write_video(broken, np.zeros((24, 32, 32, 3), np.uint8), 12)
    recs.append({**recs[mine], "attempt": "regenerated"})
    gen.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(sync) == 0
    fresh = read_jsonl(out / "sync.jsonl")[len(records):]
    assert [(r["clip_id"], r["attempt"], r["status"]) for r in fresh] == [(broken.stem, "regenerated", "not_applicable")] * 2
    assert _rows(out)["ground_truth"]["desync_err"] == "0"
    # another weights file (the original release's layout: other bytes): its own records, and only they count
    n = len(read_jsonl(out / "sync.jsonl"))
    assert main([*base, "--metrics", "av_align,desync", "--weights", str(SYNC / "original"),
                 "--stages", "metrics,summarize"]) == 0
    assert len(read_jsonl(out / "sync.jsonl")) == n + 3
    row = _rows(out)["ground_truth"]
    assert row["desync_na"] == "3" and row["ib_na"] == "3"  # 3 clips each, not 6
    # a summary made without --metrics keeps both columns (the newest records' settings)
    assert main([*base, "--stages", "summarize"]) == 0
    assert _rows(out)["ground_truth"]["desync_lineage"].startswith("avbench, L = 2 s")


def test_env_names_the_sync_lineages(long_root, tmp_path):
    out = tmp_path / "run"
    assert main([*_args(long_root, out, SHORT), "--desync-lineage", "synchformer", "--ib-lineage", "javisbench"]) == 0
    env = json.loads((out / "env.json").read_text())
    assert env["desync_lineage"] == "synchformer" and env["ib_lineage"] == "javisbench" and env["short"] == "error"
    rows = _rows(out)
    assert rows["ground_truth"]["desync_lineage"].startswith("synchformer, L = 2 s")
    # javisbench's five 2 s clips fit a 2 s span: a number, not a dash
    assert rows["ground_truth"]["ib"] != "" and rows["ground_truth"]["ib_lineage"].startswith("javisbench")
