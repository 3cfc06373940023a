"""avalign.io.atomic: a file is absent, old or complete; fsynced before the rename, the folder after;
a folder built once is published whole."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from avalign.io import atomic, build_once, write_json_atomic


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    out = tmp_path / "sub" / "r.json"
    write_json_atomic(out, {"a": 1})
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / "sub" / ".r.")) and events[0][1].endswith(".partial.json")
    assert events[1][1] == str(out) and events[2][1] == str(tmp_path / "sub")
    assert out.read_text() == '{\n "a": 1\n}' and os.listdir(tmp_path / "sub") == ["r.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "r.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["r.txt"]


def test_an_interrupted_build_leaves_nothing_and_the_next_one_builds(tmp_path):
    final = tmp_path / "data"

    def half(tmp):
        (tmp / "a").write_text("1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(final, half)
    assert not final.exists() and [p.name for p in tmp_path.iterdir()] == [".data.build.lock"]
    build_once(final, lambda tmp: (tmp / "a").write_text("2"))
    assert (final / "a").read_text() == "2"
    build_once(final, lambda tmp: pytest.fail("built twice"))  # it exists: nothing is redone


@pytest.mark.slow  # 4 s: two processes
@pytest.mark.timeout(60)
def test_a_second_builder_waits_for_the_first_and_uses_its_folder(tmp_path):
    final = tmp_path / "data"
    code = ("import sys, time; from pathlib import Path; from avalign.io import build_once; "
            f"build_once(Path({str(final)!r}), lambda t: (time.sleep(3), (t / 'who').write_text(sys.argv[1])))")
    first = subprocess.Popen([sys.executable, "-c", code, "first"])
    while not list(tmp_path.glob(".data.*.partial")):  # the first is building (it holds the lock)
        assert first.poll() is None
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", code, "second"], timeout=50)
    assert first.wait(timeout=50) == 0 and second.returncode == 0
    assert (final / "who").read_text() == "first"


def test_a_killed_builders_leftover_is_removed_by_the_next_build(tmp_path):
    final = tmp_path / "data"
    left = tmp_path / ".data.999999.partial"  # what a kill -9 (another pid) left
    left.mkdir()
    (left / "half").write_text("x")
    build_once(final, lambda tmp: (tmp / "a").write_text("1"))
    assert not left.exists() and (final / "a").read_text() == "1"


def test_an_out_named_as_a_folder_is_refused(tmp_path):
    from avalign.io import LockedError, lock_output

    for out in (f"{tmp_path}/adir/", str(tmp_path)):
        with pytest.raises(LockedError, match="is a folder"):
            lock_output(out)
    assert not (tmp_path / "adir").exists()
    with lock_output(tmp_path / "noext"):  # no suffix: still a file
        pass
