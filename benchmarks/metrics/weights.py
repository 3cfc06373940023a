"""The weight files the video-quality metrics read, and their loaders (nothing is ever downloaded).

The user puts the published files in one folder (``--weights DIR``).  Every loader reads a file
safely: TorchScript archives with ``torch.jit.load``, state dicts with ``torch.load(weights_only=True)``,
CLIP with ``from_pretrained(local_files_only=True)``.  A missing or unreadable file raises
:class:`WeightsError`, one line naming the expected file and what publishes it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch


class WeightsError(FileNotFoundError):
    """A weight file is missing or is not what its name says (one line; exit status 2)."""


@dataclass(frozen=True)
class WeightFile:
    """One published weight file: its name in ``--weights DIR``, the metric, who publishes it, its format."""

    name: str
    metric: str
    publisher: str
    format: str


WEIGHTS = {
    "styleganv": WeightFile(
        "i3d_torchscript.pt", "FVD (styleganv)",
        "StyleGAN-V (universome/stylegan-v, src/metrics/frechet_video_distance.py), also used by ASVA",
        "TorchScript I3D: forward(x uint8 (B,3,T,H,W), rescale, resize, return_features) -> (B, 400)"),
    "videogpt": WeightFile(
        "i3d_pretrained_400.pt", "FVD (videogpt)",
        "VideoGPT / TATS (SongweiGe/TATS) / MM-Diffusion: Kinetics-400 I3D converted from deepmind/i3d-kinetics-400",
        "state dict of InceptionI3d(400, in_channels=3) (Conv3d_1a_7x7.conv3d.weight, ..., logits.conv3d.bias)"),
    "c3d": WeightFile(
        "c3d_ucf101.pt", "IS",
        "StyleGAN-V (universome/stylegan-v, src/metrics/video_inception_score.py), from TGANv2's C3D",
        "TorchScript C3D fine-tuned on UCF-101: forward(x uint8 (B,3,16,H,W)) -> (B, 101) probabilities"),
    "clip": WeightFile(
        "clip-vit-base-patch32", "CLIPSIM",
        "OpenAI CLIP ViT-B/32 (openai/clip-vit-base-patch32 on the Hugging Face Hub)",
        "transformers folder: config.json, model.safetensors, tokenizer and preprocessor files"),
    "synchformer": WeightFile(
        "synchformer_state_dict.pth", "DeSync",
        "MMAudio's release v0.1 (hkchengrex/MMAudio), the AudioSet-trained Synchformer 24-01-04T16-39-21, "
        "as av-benchmark loads it",
        "plain state dict of Synchformer (vfeat_extractor.*, afeat_extractor.*, vproj, aproj, transformer.*)"),
    "synchformer_original": WeightFile(
        "24-01-04T16-39-21.pt", "DeSync",
        "Synchformer's original release (v-iashin/Synchformer, AudioSet 24-01-04T16-39-21)",
        "a dict whose 'model' is the state dict, with OmegaConf objects (read by a restricted load)"),
    "imagebind": WeightFile(
        "imagebind_huge.pth", "IB-score",
        "ImageBind (facebookresearch/ImageBind, the imagebind_huge checkpoint), as av-benchmark loads it",
        "plain state dict of ImageBindModel (modality_preprocessors/trunks/heads/postprocessors.*); only the "
        "vision and audio branches are read"),
}


def locate(weights_dir: str | os.PathLike | None, key: str) -> Path:
    """The path of weight ``key`` in ``weights_dir``; raises :class:`WeightsError` if it is not there.

    CLIP is the sub-folder ``clip-vit-base-patch32``, or ``weights_dir`` itself when that is a
    transformers folder (it has ``config.json``).
    """
    w = WEIGHTS[key]
    if weights_dir is None:
        raise WeightsError(f"--weights is required for {w.metric}: a folder holding {w.name} ({w.publisher})")
    folder = Path(weights_dir)
    if key == "clip" and (folder / "config.json").is_file():
        return folder
    path = folder / w.name
    if not path.exists():
        raise WeightsError(f"{path}: not found; {w.metric} needs {w.name} from {w.publisher}")
    return path


def tree_sha256(path: str | os.PathLike | None) -> str | None:
    """SHA-256 (16 hex digits) of every file under a model folder (relative names and bytes), or of
    one file; None when ``path`` is None or does not exist.  It names the weights a run used, so a
    model replaced in place (``tempotokens toy --install``) is never mistaken for the old one."""
    if path is None or not Path(path).exists():
        return None
    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root) if f != root else f.name}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def load_torchscript(weights_dir: str | os.PathLike | None, key: str) -> torch.jit.ScriptModule:
    """A published TorchScript detector (``styleganv`` I3D or ``c3d``), on the CPU, in eval mode."""
    path = locate(weights_dir, key)
    w = WEIGHTS[key]
    try:
        with warnings.catch_warnings():  # torch 2.10+ marks TorchScript deprecated; the published files are TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # a state dict, a pickle, a truncated file: jit.load raises RuntimeError and others
        raise WeightsError(f"{path}: not a TorchScript archive ({type(exc).__name__}); {w.metric} needs {w.name} "
                           f"from {w.publisher}: {w.format}") from None
    module = module.eval()
    probe(module, path, key)
    return module


#: A dummy clip every detector must accept: uint8 RGB (1, 3, 16, 64, 64).
PROBE_SHAPE = (1, 3, 16, 64, 64)


def probe(module, path: Path, key: str) -> None:
    """Call a loaded TorchScript detector once as the metric will, on a dummy clip, and check its output:
    a file of the wrong kind (another metric's detector, another signature) fails here, naming the file."""
    w = WEIGHTS[key]
    x = torch.zeros(PROBE_SHAPE, dtype=torch.uint8)
    try:
        with torch.inference_mode():
            out = module(x, rescale=True, resize=True, return_features=True) if key == "styleganv" else module(x)
    except Exception as exc:
        raise WeightsError(f"{path}: fails on a dummy clip ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); "
                           f"{w.metric} needs {w.name} from {w.publisher}: {w.format}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1 or not torch.isfinite(out).all():
        raise WeightsError(f"{path}: returns {getattr(out, 'shape', type(out).__name__)} for one clip, not finite (1, D) "
                           f"features; {w.metric} needs {w.name} from {w.publisher}: {w.format}")
    if key == "c3d" and ((out < 0).any() or abs(float(out.sum()) - 1) > 1e-3):
        raise WeightsError(f"{path}: does not return class probabilities (a row sums to {float(out.sum()):.4g}); "
                           f"{w.metric} needs {w.name} from {w.publisher}: {w.format}")


def check(weights_dir: str | os.PathLike | None, keys) -> None:
    """Load every weight of ``keys`` (``styleganv``, ``videogpt``, ``c3d``, ``clip``) once, as the metrics
    will, so that a missing or wrong file fails before any work (raises :class:`WeightsError`)."""
    for key in keys:
        {"styleganv": lambda: load_torchscript(weights_dir, "styleganv"), "c3d": lambda: load_torchscript(weights_dir, "c3d"),
         "videogpt": lambda: load_i3d(weights_dir), "clip": lambda: load_clip(weights_dir)}[key]()


def load_i3d(weights_dir: str | os.PathLike | None):
    """The ``videogpt`` lineage's I3D: our :class:`~benchmarks.metrics.i3d.InceptionI3d` with the
    state dict ``i3d_pretrained_400.pt`` loaded strictly (a missing or unexpected key is refused)."""
    from .i3d import InceptionI3d

    path = locate(weights_dir, "videogpt")
    w = WEIGHTS["videogpt"]
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a weights-only state dict ({type(exc).__name__}); {w.metric} needs "
                           f"{w.name} from {w.publisher}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "Conv3d_1a_7x7.conv3d.weight" not in state or "logits.conv3d.weight" not in state:
        raise WeightsError(f"{path}: not an InceptionI3d state dict (no Conv3d_1a_7x7.conv3d.weight or "
                           f"logits.conv3d.weight); {w.metric} needs {w.name} from {w.publisher}")
    return load_strict(InceptionI3d.for_state_dict(state), state, path, "videogpt", ignore="num_batches_tracked")


def load_clip(weights_dir: str | os.PathLike | None):
    """``(CLIPModel, CLIPProcessor)`` from a local folder (``local_files_only=True``), eval mode."""
    from transformers import CLIPModel, CLIPProcessor

    path = locate(weights_dir, "clip")
    w = WEIGHTS["clip"]
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot load a CLIP model and processor ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); CLIPSIM needs {w.format} from {w.publisher}") from None
    return model.eval(), processor


#: What the original Synchformer checkpoint may hold besides tensors: OmegaConf's containers and
#: nodes and the builtins they use.  Nothing else is unpickled (no callable, no other class).
def _omegaconf_globals() -> list:
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode, BooleanNode, BytesNode, FloatNode, IntegerNode, PathNode, StringNode

    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, BooleanNode, BytesNode, FloatNode,
            IntegerNode, PathNode, StringNode, typing.Any, collections.defaultdict, dict, list, int, float, str, bool]


def read_state_dict(path: Path, key: str, inner: str | None = None) -> dict:
    """A state dict by ``torch.load(weights_only=True)``; ``inner`` takes that key of a checkpoint
    dict, with OmegaConf's classes allow-listed (the original Synchformer file).  Raises
    :class:`WeightsError` naming the file."""
    w = WEIGHTS[key]
    try:
        if inner is None:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            with torch.serialization.safe_globals(_omegaconf_globals()):
                state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with other globals, a truncated file, not a torch file
        first = " ".join(str(exc).split("\n")[-1].split())[:160] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: not a weights-only checkpoint ({type(exc).__name__}: {first}); {w.metric} "
                           f"needs {w.name} from {w.publisher}: {w.format}") from None
    if inner is not None:
        if not isinstance(state, dict) or not isinstance(state.get(inner), dict):
            raise WeightsError(f"{path}: no '{inner}' state dict inside; {w.metric} needs {w.format}")
        state = state[inner]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors; {w.metric} needs {w.format}")
    return state


def sizes_beside(path: Path, section: str, field: str = "sizes") -> dict | None:
    """``section.field`` of a ``config.json`` beside the weights (the reduced test models' sizes), or
    None: the published sizes."""
    import json

    config = path.parent / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text())[section][field]
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{config}: no {section}.{field} ({type(exc).__name__}); remove it to use the published "
                           "sizes") from None


def load_strict(model: torch.nn.Module, state: dict, path: Path, key: str, ignore: str | None = None
                ) -> torch.nn.Module:
    """``load_state_dict(strict=True, assign=True)`` into a model (built on the meta device, or not),
    with a one-line :class:`WeightsError` on any missing, unexpected or misshapen key.  Keys ending in
    ``ignore`` (BatchNorm's ``num_batches_tracked``, which some files lack) keep the model's own."""
    w = WEIGHTS[key]
    expected = model.state_dict()
    if ignore:
        state = {**{k: v for k, v in expected.items() if k.endswith(ignore)},
                 **{k: v for k, v in state.items() if not k.endswith(ignore)}}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or shapes:
        what = "; ".join(p for p in (
            f"missing {len(missing)} keys (first: {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected keys (first: {unexpected[0]})" if unexpected else "",
            f"{len(shapes)} shapes differ (first: {shapes[0]} {tuple(state[shapes[0]].shape)} vs "
            f"{tuple(expected[shapes[0]].shape)})" if shapes else "") if p)
        raise WeightsError(f"{path}: not the {w.metric} model's layout ({what}); {w.metric} needs {w.name} from "
                           f"{w.publisher}")
    model.load_state_dict(state, strict=True, assign=True)  # built on the meta device: the file's tensors
    return model.eval()


def load_synchformer(weights_dir: str | os.PathLike | None):
    """DeSync's Synchformer: ``synchformer_state_dict.pth`` (av-benchmark's file) or, when only it is
    there, the original ``24-01-04T16-39-21.pt`` (restricted load); sizes from a ``config.json``
    beside it, else the published ones.  Returns ``(model, path)``."""
    from .synchformer import Synchformer, SynchformerSizes

    folder = Path(weights_dir) if weights_dir is not None else None
    if folder is not None and not (folder / WEIGHTS["synchformer"].name).exists() and \
            (folder / WEIGHTS["synchformer_original"].name).exists():
        key, inner = "synchformer_original", "model"
    else:
        key, inner = "synchformer", None
    path = locate(weights_dir, key)
    state = read_state_dict(path, key, inner)
    sizes = sizes_beside(path, "synchformer")
    with torch.device("meta"):  # no random init of 237M weights only to overwrite them
        model = Synchformer(SynchformerSizes.from_config(sizes) if sizes else SynchformerSizes())
    return load_strict(model, state, path, key), path


def load_imagebind(weights_dir: str | os.PathLike | None):
    """IB-score's ImageBind (vision and audio branches) from ``imagebind_huge.pth`` (weights_only):
    every key of the two branches must be there with its shape; the other modalities' keys are
    ignored.  Sizes from a ``config.json`` beside it (``imagebind.ImageBindModel_kwargs``), else
    ImageBind-huge's.  Returns ``(model, path)``."""
    from .imagebind import ImageBind, ImageBindSizes

    path = locate(weights_dir, "imagebind")
    state = read_state_dict(path, "imagebind")
    kwargs = sizes_beside(path, "imagebind", "ImageBindModel_kwargs")
    with torch.device("meta"):
        model = ImageBind(ImageBindSizes.from_config(kwargs) if kwargs else ImageBindSizes())
    wanted = set(model.state_dict())
    return load_strict(model, {k: v for k, v in state.items() if k in wanted or
                               (k.split(".")[1:2] in (["vision"], ["audio"]))}, path, "imagebind"), path


_SYNC_MODELS: dict[tuple[str, str, str | None], tuple] = {}


def sync_weight_path(metric: str, weights_dir: str | os.PathLike | None) -> Path:
    """The weight file ``desync`` or ``ib`` reads from ``weights_dir`` (DeSync: av-benchmark's file,
    else the original release); raises :class:`WeightsError` when it is not there."""
    key = "synchformer" if metric == "desync" else "imagebind"
    folder = Path(weights_dir) if weights_dir is not None else None
    if folder is not None and key == "synchformer" and not (folder / WEIGHTS["synchformer"].name).exists() and \
            (folder / WEIGHTS["synchformer_original"].name).exists():
        key = "synchformer_original"
    return locate(weights_dir, key)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sync_weights_digest(metric: str, weights_dir: str | os.PathLike | None) -> str:
    """:func:`tree_sha256` of the weight file ``metric`` reads, hashed once per process while the
    file keeps its size and modification time (ImageBind-huge is 4.5 GB: a run asks for its digest
    when it checks the file, when it scores and when it summarises)."""
    path = sync_weight_path(metric, weights_dir)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = tree_sha256(path)
    return _DIGESTS[key]


def load_sync_model(metric: str, weights_dir: str | os.PathLike | None):
    """``(model, weight file, its digest)`` of ``desync`` (:func:`load_synchformer`) or ``ib``
    (:func:`load_imagebind`), eval mode, loaded once per process, folder and file digest (a benchmark
    run checks the file before any work and scores with the same model; a file replaced in place is
    loaded again).  Raises :class:`WeightsError`."""
    path = sync_weight_path(metric, weights_dir)
    cache = (metric, str(path.resolve()), sync_weights_digest(metric, weights_dir))
    if cache not in _SYNC_MODELS:
        model, path = (load_synchformer if metric == "desync" else load_imagebind)(weights_dir)
        _SYNC_MODELS[cache] = (model.eval(), str(path), cache[2])
    return _SYNC_MODELS[cache]
