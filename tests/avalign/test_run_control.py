"""Run control of ``python -m avalign score`` (avalign.runctl, avalign.io.lock, avalign.io.atomic):
Ctrl-C and SIGTERM stop it within seconds with its workers gone and its records kept, a second run
into a held ``--out`` is refused, a ``kill -9`` leaves no stuck lock, a full disk is one line with
exit status 2, and every rerun resumes with nothing lost and nothing duplicated."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avalign.io import read_jsonl

STOP_BOUND_S = 5.0  # the bound on how long a stop may take (behaviour, not a speed figure)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """12 clips of 4 s at 320x180, 25 fps: about a second of flow each, so a run has items left
    when it is signalled after its first record."""
    from tests.fixtures.media import textured_motion_clip

    folder = tmp_path_factory.mktemp("clips")
    for seed in range(12):
        textured_motion_clip(folder / f"c{seed:02d}", seconds=4.0, width=320, height=180, events=4 + seed % 5,
                             seed=seed)
    return folder


def _foreground() -> None:
    """A child as a terminal starts it: SIGINT at its default, whatever this test process inherited
    (a shell starts background jobs with SIGINT ignored, and the tools keep an inherited ignore)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _score(clip_dir: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "avalign", "score", str(clip_dir), "--workers", "2", "--out", str(out), "--quiet",
           *extra]
    popen.setdefault("preexec_fn", _foreground)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (its workers, the forkserver and the forkserver's children)."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                if c not in found:
                    found.add(c)
                    todo.append(c)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_records(out: Path, n: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(read_jsonl(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no record appeared"
        time.sleep(0.05)


def _keys(out: Path) -> list[str]:
    return [r["key"] for r in read_jsonl(out)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_a_signal_stops_the_run_its_workers_and_a_rerun_resumes(clip_dir, tmp_path, sig, status):
    out = tmp_path / "R.jsonl"
    proc = _score(clip_dir, out)
    _wait_for_records(out, 1, proc)
    workers = _descendants(proc.pid)
    assert workers, "the run has worker processes"
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=60)
    stopped_s = time.monotonic() - t0
    assert proc.returncode == status, err
    assert stopped_s < STOP_BOUND_S
    assert "what was finished is kept" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)], "workers outlived the run"
    kept = _keys(out)
    assert 1 <= len(kept) < 12, "items remained when the signal came"
    assert len(set(kept)) == len(kept)

    rerun = _score(clip_dir, out)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    keys = _keys(out)
    assert len(keys) == 12 and len(set(keys)) == 12
    assert keys[: len(kept)] == kept  # the finished records are kept as they were


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_second_run_into_a_live_out_is_refused_and_kill_9_leaves_no_stuck_lock(clip_dir, tmp_path):
    out = tmp_path / "R.jsonl"
    first = _score(clip_dir, out)
    _wait_for_records(out, 1, first)
    second = _score(clip_dir, out)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert err.strip().splitlines() == [f"avalign: error: {out}: in use by another run (pid {first.pid}); "
                                        "wait for it to end or use another --out"]
    os.killpg(first.pid, signal.SIGKILL)  # no handler runs: the lock must still not stick
    first.communicate(timeout=60)
    kept = _keys(out)
    rerun = _score(clip_dir, out)
    _, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    keys = _keys(out)
    assert len(keys) == 12 and len(set(keys)) == 12 and keys[: len(kept)] == kept


def test_the_lock_refuses_a_live_holder_and_is_free_once_it_is_gone(tmp_path):
    """A process holding ``R.jsonl``'s lock: this one is refused with its pid; once the holder is
    killed with SIGKILL (no handler runs) the lock is free, though its file is still there."""
    from avalign.io import LockedError, lock_output

    out = tmp_path / "R.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from avalign.io import lock_output; "
                               f"lock = lock_output({str(out)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockedError, match=rf"R.jsonl: in use by another run \(pid {holder.pid}\)"):
        lock_output(out)
    holder.kill()
    holder.wait()
    assert (tmp_path / "R.jsonl.lock").exists()
    with lock_output(out):  # free: the kernel dropped the dead holder's flock
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            lock_output(out)  # and this process now holds it


def _small_disk(limit_bytes: int):
    """A child process whose files cannot grow past ``limit_bytes`` (writes then fail with EFBIG,
    as they fail with ENOSPC on a full disk)."""
    def apply():
        _foreground()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


@pytest.mark.slow  # 11 s
@pytest.mark.timeout(300)
def test_a_full_disk_is_one_line_exit_2_and_the_rerun_loses_and_duplicates_nothing(tmp_path, make_clip):
    folder = tmp_path / "clips"
    for k in range(8):  # 2 s at 10 fps: 19 pairs, one task each, so --out is the only file written
        make_clip(f"k{k}", [0.5 + 0.1 * k], [0.5 + 0.1 * k], duration_s=2.0, folder=folder)
    out = tmp_path / "R.jsonl"
    one = len(json.dumps(read_jsonl_first(folder, tmp_path))) + 1
    proc = _score(folder, out, preexec_fn=_small_disk(int(2.5 * one)))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"avalign: error: {out}: cannot write (")
    kept = read_jsonl(out)
    assert out.read_bytes().endswith(b"\n"), "no torn line is left"
    assert len(kept) == 2
    rerun = _score(folder, out)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    keys = _keys(out)
    assert len(keys) == 8 and len(set(keys)) == 8 and read_jsonl(out)[:2] == kept


def read_jsonl_first(folder: Path, tmp_path: Path) -> dict:
    """One record as this build writes it (its length sizes the small disk above)."""
    probe = tmp_path / "probe.jsonl"
    subprocess.run([sys.executable, "-m", "avalign", "score", str(folder / "k0.mp4"), "--workers", "1", "--out",
                    str(probe), "--quiet"], check=True, capture_output=True)
    return read_jsonl(probe)[0]


@pytest.mark.timeout(120)
def test_a_full_temporary_folder_in_a_worker_is_one_line_exit_2(clip_dir, tmp_path):
    """A long clip's frames go to a temporary file in the worker: a full disk there stops the run."""
    out = tmp_path / "R.jsonl"
    proc = _score(clip_dir, out, preexec_fn=_small_disk(4096))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("avalign: error: ") and line.endswith(".npy: cannot write (No space left on device)")


def _signal_after(cmd: list[str], ready, sig, cwd: Path, timeout_s: float = 300.0) -> tuple[int, float, str, set]:
    """Start ``cmd`` in its own process group, wait until ``ready()``, send ``sig`` to the group;
    returns (status, seconds from signal to exit, stderr, the processes it had)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_foreground)
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.1)
    children = _descendants(proc.pid)
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, time.monotonic() - t0, err, children


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_benchmark_runner_stops_mid_generation_and_resumes(tmp_path):
    """SIGINT while the tiny model is generating (in its own process): exit 130 within the bound,
    the method's process gone, its finished clips' records kept; the rerun completes every clip once."""
    from tempotokens.data.synthetic import make_synthetic

    data = tmp_path / "data"
    from tempotokens.data.datasets import index_dataset

    make_synthetic(data, num_clips=40, seed=0, duration_s=2.0, size=32)
    n = len(index_dataset(data, "synthetic", split="test"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "benchmarks.run", "--data-root", str(data), "--model", "tiny", "--out", str(out),
           "--methods", "tempotokens,ground_truth", "--steps", "4", "--workers", "2"]

    def some_generated():
        return any(r["method"] == "tempotokens" for r in read_jsonl(out / "generate-0.jsonl"))

    status, seconds, err, children = _signal_after(cmd, some_generated, signal.SIGINT, tmp_path)
    assert status == 130 and seconds < STOP_BOUND_S, err
    # one line, no traceback, and no "leaked semaphore" from the resource tracker (which holds the
    # stderr pipe until it ends, so its warning would be in err)
    assert "what was finished is kept" in err and "Traceback" not in err and "leaked" not in err, err
    time.sleep(0.5)
    assert children and not [p for p in children if _alive(p)]
    kept = [r for r in read_jsonl(out / "generate-0.jsonl") if r["method"] == "tempotokens"]
    assert 1 <= len(kept) < n
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    gen = [(r["method"], r["clip_id"]) for r in read_jsonl(out / "generate-0.jsonl")]
    assert len(gen) == len(set(gen)) == 2 * n  # n clips x 2 methods, none generated twice
    scored = [(r["method"], r["clip_id"]) for r in read_jsonl(out / "records.jsonl")]
    assert len(scored) == len(set(scored)) == 2 * n


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_training_stops_within_the_bound_and_resumes_from_its_checkpoint(tmp_path, sig, status):
    out = tmp_path / "train"
    common = ["--config", "tiny", "--output-dir", str(out), f"data.root={tmp_path / 'data'}", f"model={tmp_path / 'tiny-model'}"]
    cmd = [sys.executable, "-m", "tempotokens.train", *common, "--max-steps", "400"]
    code, seconds, err, _ = _signal_after(cmd, lambda: (out / "checkpoint-4").is_dir(), sig, tmp_path)
    assert code == status and seconds < STOP_BOUND_S, err
    assert "what was finished is kept" in err and "Traceback" not in err
    assert not list(out.glob(".tmp-*")), "a checkpoint is published whole or not at all"
    last = max(int(c.name.split("-")[1]) for c in out.glob("checkpoint-*"))
    resumed = subprocess.run([sys.executable, "-m", "tempotokens.train", *common, "--max-steps", str(last + 2),
                              "--resume", "latest"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, last + 3))  # every step once: kept up to the checkpoint, then resumed


@pytest.mark.slow  # 6 s
@pytest.mark.timeout(120)
def test_a_signal_ends_a_worker_stuck_in_a_long_task(clip_dir, tmp_path):
    """A worker busy with a task that lasts two minutes (fault injection): the stop does not wait
    for it; the parent terminates its workers."""
    out = tmp_path / "R.jsonl"
    env = {**os.environ, "_AVALIGN_SLOW_ON": str(clip_dir)}  # every clip's first task hangs
    proc = subprocess.Popen([sys.executable, "-m", "avalign", "score", str(clip_dir), "--workers", "2", "--out",
                             str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env, preexec_fn=_foreground)
    deadline = time.monotonic() + 60
    while len(_descendants(proc.pid)) < 3 or time.monotonic() < deadline - 55:  # forkserver + 2 workers, 5 s in
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    workers = _descendants(proc.pid)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=100)
    assert proc.returncode == 130 and time.monotonic() - t0 < STOP_BOUND_S, err
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)]


@pytest.mark.slow  # 5 s
@pytest.mark.timeout(60)
def test_an_inherited_ignored_sigint_stays_ignored_and_sigterm_still_stops(clip_dir, tmp_path):
    """Started with SIGINT ignored (``cmd &`` in a script): a Ctrl-C to the group leaves it running,
    as the shell meant; SIGTERM still stops it with 143."""
    out = tmp_path / "R.jsonl"
    proc = _score(clip_dir, out, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    _wait_for_records(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None, "an ignored SIGINT stopped the run"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
