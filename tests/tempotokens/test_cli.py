"""``python -m tempotokens``: make-tiny and generate, and their errors."""

import numpy as np
import pytest

from avalign.io import write_wav

from avalign.readers import read_video_gray
from tempotokens.cli import main
from tests.fixtures.media import click_track


def test_make_tiny_writes_every_format(tmp_path, capsys):
    assert main(["make-tiny", str(tmp_path / "m")]) == 0
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler", "beats", "adaptor",
            "beats_tiny.pt", "learned_embeds.pth"} <= names


def test_generate_writes_mp4_and_wav(tiny_dir, tmp_path):
    wav = write_wav(tmp_path / "in.wav", click_track([0.3], 1.0, 22050), 22050)
    out = tmp_path / "out" / "clip.mp4"
    assert main(["generate", "--model", str(tiny_dir), "--out", str(out), "--audio", str(wav),
                 "--num-frames", "8", "--fps", "8", "--steps", "2", "--seed", "3"]) == 0
    video = read_video_gray(out)
    assert video.n_frames == 8 and video.fps == 8.0 and video.frame_shape == (32, 32, 3)
    assert (tmp_path / "out" / "clip.wav").exists()


def test_generate_is_seeded(tiny_dir, tmp_path):
    args = ["generate", "--model", str(tiny_dir), "--prompt", "a drum", "--num-frames", "4", "--fps", "4",
            "--steps", "2", "--seed", "1", "--guidance", "3"]
    assert main(args + ["--out", str(tmp_path / "a.mp4")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.mp4")]) == 0
    assert np.array_equal(read_video_gray(tmp_path / "a.mp4").frames, read_video_gray(tmp_path / "b.mp4").frames)


@pytest.mark.parametrize("case", ["missing-audio", "unreadable-audio", "nothing", "not-a-model"])
def test_bad_input_exits_2_with_one_line(case, tiny_dir, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    argv = {
        "missing-audio": ["--audio", str(tmp_path / "none.wav")],
        "unreadable-audio": ["--audio", str(bad)],
        "nothing": [],
        "not-a-model": ["--prompt", "x"],
    }[case]
    model = str(tmp_path) if case == "not-a-model" else str(tiny_dir)
    assert main(["generate", "--model", model, "--out", str(tmp_path / "o.mp4"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tempotokens: error:") and "Traceback" not in err[0]


def test_help_exits_0():
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--help"])
    assert exc.value.code == 0
