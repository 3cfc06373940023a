"""The benchmark runner: one protocol for every row, resume, refusal of changed settings, retries,
external folders, the folder dataset and clean failures."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avalign.io import write_video, write_wav

from avalign.readers import read_video_gray
from avalign.io import read_jsonl
from baselines.shuffled_audio import derangement
from benchmarks.run import main, shard
from benchmarks.metrics.weights import tree_sha256

SMALL = ["--num-frames", "24", "--fps", "12", "--size", "32x32", "--steps", "2", "--guidance", "3",
         "--workers", "2"]
ROOT = Path(__file__).resolve().parents[2]


def _rows(run: Path) -> dict[str, dict]:
    return {r["method"]: r for r in csv.DictReader(open(run / "summary.csv"))}


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from tempotokens.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("bench-data")
    make_synthetic(root, num_clips=12, seed=0, duration_s=3.0, size=48)  # 3 test clips
    return root


@pytest.fixture(scope="module")
def run(tiny_dir, data_root, tmp_path_factory):
    """One run of every built-in method plus external (a copy of ground truth's files)."""
    out = tmp_path_factory.mktemp("bench") / "run"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(out), *SMALL]
    assert main([*args, "--methods", "ground_truth"]) == 0
    external = out.parent / "external"
    shutil.copytree(out / "clips" / "ground_truth", external)
    for wav in external.glob("*.wav"):  # their own audio is silence: only the dataset's audio can match
        write_wav(wav, np.zeros(16000, np.float32), 16000)
    # the control first: the runner still runs it after the tempotokens clips it reads
    assert main([*args, "--methods", "tempotokens_other_audio,tempotokens,tempotokens_text_audio,text_to_video,"
                                     f"ground_truth,shuffled_audio,static_frame,external:{external},"
                                     f"external:{external}:own-audio"]) == 0
    return out


def test_every_row_is_scored_under_one_protocol(run):
    rows = _rows(run)
    assert set(rows) == {"tempotokens", "tempotokens_text_audio", "text_to_video", "ground_truth", "shuffled_audio",
                         "tempotokens_other_audio", "static_frame", "external:external", "external:external:own-audio"}
    for r in rows.values():
        assert (r["n"], r["n_error"], r["dataset"]) == ("3", "0", "synthetic")
        assert (r["protocol"], r["variant"]) == ("12 fps, 32x32 px, 2 s", "tempotokens-2025")
    records = read_jsonl(run / "records.jsonl")
    assert len(records) == 9 * 3
    for r in records:  # real clips (24-30 fps, 48 px) and generated ones (12 fps, 32 px) alike
        a = r["avalign"]
        assert a["protocol"] == {"fps": 12.0, "width": 32, "height": 32, "duration_s": 2.0, "flow": "farneback"}
        assert (a["fps"], a["n_frames"], a["frame_shape"][:2]) == (12.0, 24, [32, 32])
        assert all(t < 2.0 for t in a["audio_peaks"]) and len(a["onset_envelope"]) > 0
    assert {rows[m]["role"] for m in rows} == {"compared", "ceiling", "chance", "floor"}
    assert rows["ground_truth"]["role"] == "ceiling" and rows["external:external"]["role"] == "compared"
    assert float(rows["ground_truth"]["av_align"]) > float(rows["shuffled_audio"]["av_align"]) + 0.3
    env = json.loads((run / "env.json").read_text())
    assert env["protocol"] == {"fps": 12.0, "width": 32, "height": 32, "duration_s": 2.0, "flow": "farneback"}
    assert env["variant"] == "tempotokens-2025" and env["settings"]["num_frames"] == 24 and "git_commit" in env
    assert env["settings_hash"] == json.loads((run / "settings.json").read_text())["hash"]
    assert {r["settings_hash"] for r in records} == {env["settings_hash"]}


def test_the_control_is_the_tempotokens_video_against_the_shuffled_donor_audio(run, data_root):
    """``tempotokens_other_audio``: the same bytes as the tempotokens clip, scored against the audio of
    the clip the derangement gives (the shuffled_audio row's donor), and a second chance row."""
    from avalign import Protocol, score_file
    from avalign.io import load_audio
    from tempotokens.data.datasets import index_dataset

    clips = index_dataset(data_root, "synthetic", split="test")
    perm = derangement(len(clips), 0)
    gen = {(r["method"], r["clip_id"]): r for r in read_jsonl(run / "generate-0.jsonl")}
    scored = {(r["method"], r["clip_id"]): r for r in read_jsonl(run / "records.jsonl")}
    protocol = Protocol(fps=12.0, width=32, height=32, duration_s=2.0)
    for i, clip in enumerate(clips):
        control, source = gen[("tempotokens_other_audio", clip.clip_id)], gen[("tempotokens", clip.clip_id)]
        assert Path(control["video"]).read_bytes() == Path(source["video"]).read_bytes()
        donor, sr = load_audio(clips[perm[i]].audio, None, start_s=0.0, duration_s=2.0, pad=True)
        mine, sr2 = load_audio(control["audio"], None)
        assert sr2 == sr and np.allclose(mine, donor, atol=1 / 2**15)  # PCM16 of the donor's span
        expected = score_file(source["video"], audio=clips[perm[i]].audio, protocol=protocol)
        assert scored[("tempotokens_other_audio", clip.clip_id)]["avalign"]["score"] == expected.score
    rows = _rows(run)
    assert sorted(m for m, r in rows.items() if r["role"] == "chance") == ["shuffled_audio", "tempotokens_other_audio"]
    from reports.tables import read_summary, write_tables

    md = write_tables(read_summary(run / "summary.csv"), run.parent / "tables-check")["md"].read_text()
    assert "| tempotokens_other_audio | chance |" in md and "| shuffled_audio | chance |" in md


def test_the_control_needs_the_tempotokens_clips(tiny_dir, data_root, tmp_path, capsys):
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(tmp_path / "r"), *SMALL]
    assert main([*args, "--methods", "tempotokens_other_audio"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["benchmarks.run: error: tempotokens_other_audio reads the clips of tempotokens: add it to --methods"]
    assert not (tmp_path / "r").exists()


def test_external_is_scored_against_the_dataset_audio(run):
    rows, records = _rows(run), read_jsonl(run / "records.jsonl")
    gt = {r["clip_id"]: r["avalign"]["score"] for r in records if r["method"] == "ground_truth"}
    ext = {r["clip_id"]: r for r in records if r["method"] == "external:external"}
    assert {c: r["avalign"]["score"] for c, r in ext.items()} == gt  # the same frames, the dataset's audio span
    assert all(r["avalign"]["audio"].endswith(f"clips/external_external/{c}.wav") for c, r in ext.items())
    own = [r for r in records if r["method"] == "external:external:own-audio"]
    assert all(r["avalign"]["audio_peaks"] == [] for r in own)  # its own (silent) wavs were used
    assert rows["external:external"]["delta"] == rows["ground_truth"]["delta"]


def test_seeds_per_clip_and_resource_figures_per_method(run):
    gen = read_jsonl(run / "generate-0.jsonl")
    order = sorted({r["clip_id"] for r in gen})
    for r in gen:
        assert r["seed"] == order.index(r["clip_id"])  # seed + i, with --seed 0
    rows = _rows(run)
    loads = [p for p in read_jsonl(run / "profiles-0.jsonl") if p["kind"] == "load"]
    assert sorted(p["method"] for p in loads) == ["tempotokens", "tempotokens_text_audio", "text_to_video"]
    for m in ("tempotokens", "tempotokens_text_audio", "text_to_video"):
        r = rows[m]
        assert 0 < float(r["load_mem_mb"]) <= float(r["peak_mem_mb"]) and float(r["clips_per_hour"]) > 0
        assert float(r["clips_per_hour"]) == pytest.approx(3600 * 3 / sum(g["seconds"] for g in gen if g["method"] == m),
                                                           rel=1e-5)
    for m in ("ground_truth", "shuffled_audio", "static_frame", "external:external"):
        assert rows[m]["load_s"] == rows[m]["peak_mem_mb"] == rows[m]["s_per_clip_p50"] == ""
    clip_profiles = [p for p in read_jsonl(run / "profiles-0.jsonl") if p["kind"] == "clip"]
    assert len(clip_profiles) == 9
    for p in clip_profiles:
        assert len(p["step_s"]) == 2 and p["stages_s"]["denoising"] >= sum(p["step_s"]) * 0.999
        assert set(p["stages_s"]) >= {"prompt_encoding", "denoising", "vae_decoding", "writing"}
        assert ("audio_encoding" in p["stages_s"]) == (p["method"] != "text_to_video")


def test_rerun_redoes_nothing(run, tiny_dir, data_root):
    before = {p.name: p.read_bytes() for p in run.glob("*.jsonl")}
    assert main(["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(run), *SMALL,
                 "--methods", "ground_truth,static_frame"]) == 0
    assert {p.name: p.read_bytes() for p in run.glob("*.jsonl")} == before


@pytest.mark.parametrize("change, named", [(["--seed", "1"], "seed 0 -> 1"), (["--fps", "8"], "fps 12.0 -> 8.0"),
                                           (["--protocol", "native"], "protocol"),
                                           (["--variant", "tempotokens-2023"], "variant"),
                                           (["--num-clips", "2"], "clips 3 clips")])
def test_changed_settings_are_refused_and_nothing_is_written(run, tiny_dir, data_root, capsys, change, named):
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(run), *SMALL, *change,
            "--methods", "ground_truth"]
    before = _snapshot(run)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made with other settings" in err[0] and named in err[0]
    assert _snapshot(run) == before


def test_a_model_replaced_in_place_is_refused(tiny_dir, data_root, tmp_path, capsys):
    """The same --model path with other weights (``tempotokens toy --install`` does this to the
    default model) is other settings: never scored as if it were the old model."""
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    args = ["--data-root", str(data_root), "--model", str(model), "--out", str(tmp_path / "r"), *SMALL,
            "--methods", "ground_truth"]
    assert main(args) == 0
    settings = json.loads((tmp_path / "r" / "settings.json").read_text())
    assert settings["settings"]["weights_sha256"]["model"] == tree_sha256(model)
    weights = next((model / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made with other settings" in err[0] and "weights_sha256" in err[0]


def test_tree_digest_by_hand(tmp_path):
    import hashlib

    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "a.json").write_bytes(b"{}")
    (tmp_path / "m" / "sub" / "w.bin").write_bytes(b"xyz")
    want = hashlib.sha256(b"a.json\0{}sub/w.bin\0xyz").hexdigest()[:16]
    assert tree_sha256(tmp_path / "m") == want and tree_sha256(tmp_path / "nope") is None


def test_paired_deltas_by_hand():
    from benchmarks.summary import summary_rows

    def rec(method, clip, score, status="ok"):
        return {"method": method, "clip_id": clip, "status": status, "device": "cpu", "role": "compared",
                "avalign": None if status == "error" else {"score": score}}

    records = [rec("ref", "a", 0.5), rec("ref", "b", 0.2), rec("ref", "c", None, "undefined"), rec("ref", "d", 1.0),
               rec("m", "a", 0.7), rec("m", "b", 0.2), rec("m", "c", 0.4), rec("m", "e", 0.3),
               rec("m", "d", None, "error")]
    ref, m = summary_rows("d", records, [], ["ref", "m"], protocol="p", variant="v", reference="ref")
    # paired clips: a and b only (c is undefined for ref, d an error for m, e has no ref score)
    assert (m["n_paired"], m["reference"]) == (2, "ref")
    assert m["delta"] == pytest.approx(((0.7 - 0.5) + (0.2 - 0.2)) / 2)
    # bootstrap of [0.2, 0.0]: resample means are 0 (p=1/4), 0.1 (1/2), 0.2 (1/4) -> 95% interval [0, 0.2]
    assert (m["delta_ci_low"], m["delta_ci_high"]) == pytest.approx((0.0, 0.2))
    assert m["av_align"] == pytest.approx(np.mean([0.7, 0.2, 0.4, 0.3])) and m["n"] == 5  # per method, unpaired
    assert ref["delta"] is None and ref["n_paired"] == 3
    (alone,) = summary_rows("d", [r for r in records if r["method"] == "m"], [], ["m"], protocol="p", variant="v",
                            reference="ref")
    assert alone["delta"] is None and alone["reference"] is None  # no reference ran: empty columns


def test_the_terminal_table_shows_the_delta_with_its_paired_ci(capsys):
    from benchmarks.summary import print_table

    base = {"role": "compared", "n": 24, "n_error": 0, "av_align_ci_low": 0.1, "av_align_ci_high": 0.4,
            "s_per_clip_p50": 1.0, "peak_mem_mb": 10.0, "protocol": "p", "variant": "v", "reference": "ref"}
    print_table([{**base, "method": "ref", "av_align": 0.08, "delta": None, "delta_ci_low": None, "delta_ci_high": None},
                 {**base, "method": "m", "av_align": 0.29, "delta": 0.211, "delta_ci_low": 0.118, "delta_ci_high": 0.318},
                 {**base, "method": "k", "av_align": 0.09, "delta": 0.004, "delta_ci_low": -0.019,
                  "delta_ci_high": 0.028}])
    out = capsys.readouterr().out.splitlines()
    row = {line.split()[0]: line for line in out[2:5]}
    assert "paired 95% CI" in out[1] and row["ref"].split()[6:8] == ["—", "—"]
    assert "+0.211" in row["m"] and "+0.118..+0.318†" in row["m"]
    assert "-0.019..+0.028 " in row["k"] and "†" not in row["k"] and out[-1].startswith("†: the paired 95% CI")


@pytest.mark.slow  # 25 s: every method twice, in two orders
def test_order_independent_memory_figures(tiny_dir, data_root, tmp_path):
    """A method's memory and load figures are its own, whatever ran before it in the run."""
    base = ["--data-root", str(data_root), "--model", str(tiny_dir), *SMALL, "--num-clips", "1"]
    assert main([*base, "--out", str(tmp_path / "alone"), "--methods", "tempotokens"]) == 0
    hog = np.ones(700 * 2**20 // 8)  # 700 MiB held by the caller, and another method runs first
    assert main([*base, "--out", str(tmp_path / "after"), "--methods", "text_to_video,tempotokens"]) == 0
    del hog
    alone, after = _rows(tmp_path / "alone")["tempotokens"], _rows(tmp_path / "after")["tempotokens"]
    for key in ("peak_mem_mb", "load_mem_mb"):
        assert float(after[key]) == pytest.approx(float(alone[key]), rel=0.1), key
    assert float(after["peak_mem_mb"]) < 1.5 * float(alone["peak_mem_mb"])


def test_retry_errors_regenerates_and_rescores(tiny_dir, data_root, tmp_path):
    ext = tmp_path / "ext"
    ext.mkdir()
    run = tmp_path / "retry"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(run), *SMALL,
            "--methods", f"ground_truth,external:{ext}"]
    assert main(args) == 1  # the external folder is empty: 3 error records, exit 1, the others written
    assert _rows(run)["external:ext"]["n_error"] == "3"
    for mp4 in (run / "clips" / "ground_truth").glob("*.mp4"):
        shutil.copy(mp4, ext / mp4.name)
    assert main(args) == 1
    assert _rows(run)["external:ext"]["n_error"] == "3"  # without --retry-errors, errors count as done
    assert _rows(run)["external:ext"]["av_align"] == ""  # no clip scored: an empty cell, not "nan"
    # regenerate in one call, score in another: a regenerated clip is always rescored
    assert main([*args, "--retry-errors", "--stages", "generate"]) == 0  # every clip now has a clip
    assert main([*args, "--stages", "score,summarize"]) == 0
    rows = _rows(run)
    assert rows["external:ext"]["n_error"] == "0" and rows["external:ext"]["av_align"] == rows["ground_truth"]["av_align"]
    assert rows["external:ext"]["n"] == rows["external:ext"]["n_scored"] == "3"  # newest attempt only, no duplicate
    # another folder of the same name is not the same method: refused, nothing written
    other = tmp_path / "elsewhere" / "ext"
    shutil.copytree(ext, other)
    before = _snapshot(run)
    assert main([*args[:-1], f"ground_truth,external:{other}"]) == 2
    assert _snapshot(run) == before


def test_summarize_of_some_methods_keeps_the_reference(run, tiny_dir, data_root):
    """A later call with only some methods still summarizes the whole folder against text_to_video."""
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(run), *SMALL,
            "--methods", "ground_truth", "--stages", "summarize"]
    assert main(args) == 0
    rows = _rows(run)
    assert len(rows) == 9 and {r["reference"] for r in rows.values()} == {"text_to_video"}
    assert rows["ground_truth"]["delta"] != "" and rows["tempotokens"]["delta"] != ""
    env = json.loads((run / "env.json").read_text())
    assert env["reference_method"] == "text_to_video" and len(env["methods"]) == 9


@pytest.mark.slow  # 8 s: a whole run on a folder (CI runs it)
def test_folder_dataset(tiny_dir, tmp_path):
    from tests.fixtures.media import click_track, jump_frames

    folder = tmp_path / "clips"
    for name, wav, txt in (("a_dog_barking", True, "a dog barks twice"), ("b", False, None)):
        events = [0.4, 0.8]
        frames = jump_frames(events, 12, 12.0, size=32)
        audio = click_track(events, 1.0, 16000)
        write_video(folder / f"{name}.mp4", frames, 12.0, audio=None if wav else audio, sample_rate=16000)
        if wav:
            write_wav(folder / f"{name}.wav", audio, 16000)
        if txt:
            (folder / f"{name}.txt").write_text(txt)
    run = tmp_path / "run"
    assert main(["--dataset", "folder", "--data-root", str(folder), "--model", str(tiny_dir), "--out", str(run),
                 *SMALL, "--methods", "ground_truth,text_to_video"]) == 0
    rows = _rows(run)
    assert rows["ground_truth"]["n"] == "2" and rows["ground_truth"]["n_error"] == "0"
    assert float(rows["ground_truth"]["av_align"]) == 1.0  # wav and own track both found
    from tempotokens.data.datasets import index_dataset

    a, b = index_dataset(folder, "folder", split="test")
    assert (a.label, a.caption, a.audio) == ("a dog barks twice", "a dog barks twice", str(folder / "a_dog_barking.wav"))
    assert (b.label, b.audio, b.split) == ("b", None, "test")


@pytest.mark.parametrize("case", ["missing_root", "empty_root", "missing_csv", "no_test_clips", "unknown_method",
                                  "bad_stages", "bad_reference", "no_root_for_vggsound", "fps_0", "num_clips_-1",
                                  "workers_0", "steps_0"])
def test_clean_failures(case, tmp_path, tiny_dir, data_root, capsys):
    root = data_root
    extra: list[str] = []
    dataset = "synthetic"
    if case == "missing_root":
        root = tmp_path / "nonexistent"
    elif case == "empty_root":
        root = tmp_path / "empty"
        root.mkdir()
    elif case == "missing_csv":
        root = tmp_path / "nocsv"
        (root / "video").mkdir(parents=True)
        (root / "video" / "x.mp4").write_bytes(b"")
    elif case == "no_test_clips":
        root = tmp_path / "train-only"
        shutil.copytree(data_root, root)
        table = (root / "synthetic.csv").read_text().replace(",test", ",train")
        (root / "synthetic.csv").write_text(table)
    elif case == "unknown_method":
        extra = ["--methods", "nonsense"]
    elif case == "bad_stages":
        extra = ["--stages", "generate,scor"]
    elif case == "bad_reference":
        extra = ["--methods", "ground_truth", "--reference-method", "text_to_video"]
    elif case == "no_root_for_vggsound":
        dataset = "vggsound"
    elif "_" in case and case.split("_")[-1].lstrip("-").isdigit():  # a bad number: fps_0, num_clips_-1, ...
        name, value = case.rsplit("_", 1)
        extra = [f"--{name.replace('_', '-')}", value]
    argv = ["--dataset", dataset, "--model", str(tiny_dir), "--out", str(tmp_path / "out"), *SMALL, *extra]
    if case != "no_root_for_vggsound":
        argv += ["--data-root", str(root)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchmarks.run: error: "), err
    assert "Traceback" not in err[0] and not (tmp_path / "out").exists()


def test_derangement_has_no_fixed_point():
    for n in range(2, 30):
        for seed in range(5):
            perm = derangement(n, seed)
            assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
    assert derangement(9, 3) == derangement(9, 3)


def test_shards_cover_every_clip_once():
    for n in range(0, 20):
        for world in range(1, 5):
            parts = [shard(list(range(n)), r, world) for r in range(world)]
            assert sorted(sum(parts, [])) == list(range(n))


def test_two_processes_share_the_clips(tiny_dir, data_root, tmp_path, monkeypatch):
    out = tmp_path / "sharded"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(out), *SMALL,
            "--methods", "ground_truth,static_frame"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 0  # rank 1 generates its share and leaves
    assert not (out / "summary.csv").exists()
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 0  # rank 0 generates its share, waits for rank 1, scores, summarizes
    shares = [{(r["method"], r["clip_id"]) for r in read_jsonl(out / f"generate-{k}.jsonl")} for k in (0, 1)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 2 * 3
    assert len(read_jsonl(out / "records.jsonl")) == 6
    gen = {(r["method"], r["clip_id"]): r["seed"] for k in (0, 1) for r in read_jsonl(out / f"generate-{k}.jsonl")}
    assert sorted(set(gen.values())) == [0, 1, 2]  # seed + i over the whole clip list, whatever the shard


@pytest.mark.slow  # 24 s: a run killed and rerun (CI runs it)
@pytest.mark.timeout(300)
def test_kill_9_loses_nothing_and_the_rerun_duplicates_nothing(tiny_dir, data_root, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "benchmarks.run", "--data-root", str(data_root), "--model", str(tiny_dir),
           "--out", str(out), *SMALL, "--methods", "tempotokens,ground_truth"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(read_jsonl(out / "generate-0.jsonl")) < 1:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and the method's own process
    proc.wait()
    written = (out / "generate-0.jsonl").read_bytes()
    assert written.count(b"\n") >= 1
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    after = (out / "generate-0.jsonl").read_bytes()
    kept = written[: written.rfind(b"\n") + 1]
    assert after.startswith(kept)  # nothing written before the kill was lost or redone
    gen = read_jsonl(out / "generate-0.jsonl")
    assert len(gen) == len({(r["method"], r["clip_id"]) for r in gen}) == 6
    assert len(read_jsonl(out / "records.jsonl")) == 6


def test_generated_clips_cover_the_span(run):
    gen = read_video_gray(next((run / "clips" / "tempotokens").glob("*.mp4")))
    real = read_video_gray(next((run / "clips" / "ground_truth").glob("*.mp4")))
    assert gen.n_frames / gen.fps == pytest.approx(2.0) and real.n_frames / real.fps == pytest.approx(2.0, abs=0.05)


@pytest.mark.slow  # 7 s: a Ray cluster
def test_the_benchmark_scores_on_ray(tiny_dir, data_root, tmp_path):
    pytest.importorskip("ray")
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), *SMALL, "--methods", "ground_truth,static_frame"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    shutil.copytree(tmp_path / "local", tmp_path / "ray", symlinks=True)  # the same files, scored again on Ray
    (tmp_path / "ray" / "records.jsonl").unlink()
    assert main([*args, "--out", str(tmp_path / "ray"), "--executor", "ray", "--stages", "score,summarize"]) == 0

    def strip(run):
        return {(r["method"], r["clip_id"]): {k: v for k, v in r["avalign"].items() if k not in ("seconds", "video",
                                                                                                   "audio")}
                for r in read_jsonl(run / "records.jsonl")}

    assert strip(tmp_path / "local") == strip(tmp_path / "ray") and len(strip(tmp_path / "ray")) == 6


@pytest.mark.slow  # 11 s: every metric on a run (CI runs it)
def test_video_quality_metrics_beside_av_align(tiny_dir, data_root, tiny_weights, tmp_path, capsys):
    """FVD, IS and CLIPSIM columns: each equals the standalone CLI on the same clips under the same protocol."""
    from benchmarks.metrics.cli import main as metrics_main
    from tempotokens.data.datasets import index_dataset

    out = tmp_path / "run"
    args = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(out), *SMALL,
            "--methods", "ground_truth,static_frame,text_to_video"]
    assert main([*args, "--metrics", "av_align,fvd,is,clipsim", "--weights", str(tiny_weights)]) == 0
    rows = _rows(out)
    for r in rows.values():
        assert r["fvd_n"] == "3" and r["fvd_lineage"] == "styleganv, 16 frames" and r["is_n"] == "3"
        assert all(r[k] != "" for k in ("fvd", "is", "is_std", "clipsim", "clipsim_ci_low", "clipsim_ci_high"))
    # FVD against the dataset's own clips of the same test clips, under the run's protocol (12 fps, 32x32)
    clips = index_dataset(data_root, "synthetic", split="test")
    real = tmp_path / "real"
    real.mkdir()
    for c in clips:
        shutil.copy(c.video, real / Path(c.video).name)
    fake = out / "clips" / "text_to_video"
    assert metrics_main(["fvd", str(real), str(fake), "--weights", str(tiny_weights), "--fps", "12",
                         "--size", "32x32", "--out", str(tmp_path / "fvd.json")]) == 0
    assert float(rows["text_to_video"]["fvd"]) == pytest.approx(json.loads((tmp_path / "fvd.json").read_text())["fvd"],
                                                                rel=1e-4)
    assert float(rows["ground_truth"]["fvd"]) < 0.01 * float(rows["text_to_video"]["fvd"])  # real vs its re-encoding
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{c.clip_id} {c.label}\n" for c in clips))
    assert metrics_main(["clipsim", str(fake), "--labels", str(labels), "--weights", str(tiny_weights),
                         "--fps", "12", "--size", "32x32", "--out", str(tmp_path / "c.json")]) == 0
    assert float(rows["text_to_video"]["clipsim"]) == pytest.approx(
        json.loads((tmp_path / "c.json").read_text())["clipsim"], rel=1e-4)
    # a rerun redoes nothing; a run without the metrics keeps them; regenerated clips blank them
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.jsonl")}
    assert main([*args, "--metrics", "av_align,fvd,is,clipsim", "--weights", str(tiny_weights)]) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.jsonl")} == before
    assert main(args) == 0 and _rows(out)["text_to_video"]["fvd"] == rows["text_to_video"]["fvd"]
    gen = out / "generate-0.jsonl"
    recs = read_jsonl(gen)
    recs[-1] = {**recs[-1], "attempt": "regenerated"}
    gen.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main([*args, "--stages", "summarize"]) == 0
    assert _rows(out)[recs[-1]["method"]]["fvd"] == ""
    # the report carries the columns, with their direction
    from reports.__main__ import main as report_main

    assert report_main([str(out), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "table.md").read_text()
    assert "FVD ↓" in md and "IS ↑" in md and "CLIPSIM ↑" in md and "FVD: styleganv, 16 frames" in md


def test_metrics_need_their_weights_before_anything_runs(tiny_dir, data_root, tmp_path, capsys):
    argv = ["--data-root", str(data_root), "--model", str(tiny_dir), "--out", str(tmp_path / "out"), *SMALL,
            "--metrics", "av_align,is", "--weights", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "c3d_ucf101.pt: not found; IS needs c3d_ucf101.pt from StyleGAN-V" in err[0]
    assert not (tmp_path / "out").exists()
    assert main([*argv[:-4], "--metrics", "av_align,fid"]) == 2
    assert "--metrics 'av_align,fid': choose from av_align, fvd, is, clipsim" in capsys.readouterr().err


def test_every_record_the_run_wrote_is_a_typed_record(run):
    """Each line of every file of the run folder is exactly one of benchmarks.records' dataclasses
    (read back and written again, it is the same object, key for key); summary.csv's header is
    SummaryRow's fields; a writer's unknown key is refused."""
    import csv as _csv

    from benchmarks.records import ClipProfile, GenerationRecord, LoadProfile, ScoreRecord, SummaryRow

    files = {"generate-0.jsonl": [GenerationRecord], "records.jsonl": [ScoreRecord],
             "profiles-0.jsonl": [LoadProfile, ClipProfile]}
    for name, kinds in files.items():
        records = read_jsonl(run / name)
        assert records, name
        for r in records:
            kind = kinds[0] if len(kinds) == 1 else {"load": LoadProfile, "clip": ClipProfile}[r["kind"]]
            assert list(r) == list(kind.columns()), (name, sorted(set(r) ^ set(kind.columns())))
            assert kind.from_record(r, strict=True).to_record() == r
    with open(run / "summary.csv", newline="") as f:
        header = next(_csv.reader(f))
    assert tuple(header) == SummaryRow.columns() and "is" in header and "is_" not in header
    with pytest.raises(TypeError, match="no field bogus"):
        GenerationRecord.from_record({"clip_id": "a", "method": "m", "bogus": 1}, strict=True)
    assert GenerationRecord.from_record({"clip_id": "a", "method": "m", "bogus": 1}).status == "ok"  # reading: lenient
