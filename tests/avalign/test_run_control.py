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


def _score(clip_dir: Path, out: Path, *extra: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "avalign", "score", str(clip_dir), "--workers", "2", "--out", str(out), "--quiet",
           *extra]
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
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
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


def _small_disk(limit_bytes: int):
    """A child process whose files cannot grow past ``limit_bytes`` (writes then fail with EFBIG,
    as they fail with ENOSPC on a full disk)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


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
