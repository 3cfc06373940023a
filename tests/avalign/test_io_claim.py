"""avalign.io.claim: an output folder's identity file, shared by run folders and study folders."""

import hashlib
import json

import pytest

from avalign.io import FolderClaimError, claim_folder


def test_a_new_folder_is_claimed_and_the_same_settings_resume(tmp_path):
    folder = tmp_path / "out"
    digest = claim_folder(folder, {"fps": 12, "size": [32, 32]}, file="id.json", records="*.jsonl")
    # the hash is the documented one: SHA-1 of the canonical (sorted-key) JSON, 12 hex digits
    assert digest == hashlib.sha1(b'{"fps": 12, "size": [32, 32]}').hexdigest()[:12]
    assert json.loads((folder / "id.json").read_text()) == {"hash": digest, "settings": {"fps": 12, "size": [32, 32]}}
    (folder / "r.jsonl").write_text("{}\n")
    assert claim_folder(folder, {"size": [32, 32], "fps": 12}, file="id.json", records="*.jsonl") == digest


def test_other_settings_and_records_without_an_identity_are_refused_with_one_line(tmp_path):
    claim_folder(tmp_path, {"fps": 12, "variant": "a"}, file="id.json", records="*.jsonl")

    class Mine(FolderClaimError):
        pass

    with pytest.raises(Mine, match=r'fps 12 -> 24; variant "a" -> "b"\); use another --out$'):
        claim_folder(tmp_path, {"fps": 24, "variant": "b"}, file="id.json", records="*.jsonl", error=Mine)
    old = tmp_path / "old"
    old.mkdir()
    (old / "r.jsonl").write_text("{}\n")
    with pytest.raises(FolderClaimError, match="holds records without id.json"):
        claim_folder(old, {"fps": 12}, file="id.json", records="*.jsonl")
    assert not (old / "id.json").exists()


def test_a_nested_setting_is_named_by_its_path(tmp_path):
    claim_folder(tmp_path, {"protocol": {"fps": 12, "flow": "farneback"}}, file="id.json", records="*.jsonl")
    with pytest.raises(FolderClaimError, match=r"\(protocol\.fps 12 -> 24\)"):
        claim_folder(tmp_path, {"protocol": {"fps": 24, "flow": "farneback"}}, file="id.json", records="*.jsonl")
