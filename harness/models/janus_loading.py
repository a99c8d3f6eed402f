"""Finding, fingerprinting and placing a Janus checkpoint: a local folder or a Hugging Face id
resolved offline from the local cache, with errors that say what to do."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.hashing import canonical_json

WEIGHT_PATTERNS = ("*.json", "*.safetensors", "*.jinja", "*.model", "*.txt")

_DIGEST_CACHE: dict[tuple, str] = {}
#: files besides the weights whose content changes outputs (config.json first: it is parsed)
DIGEST_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                "processor_config.json", "preprocessor_config.json", "chat_template.jinja")


class JanusLoadError(HarnessError):
    """The checkpoint cannot be used; the message says why and how to fix it."""


# ----------------------------------------------------------------------------------------------
# Finding the checkpoint


def _read_config(config_file: Path, name: str) -> dict:
    config = json.loads(config_file.read_text())
    if config.get("model_type") == "multi_modality":
        raise JanusLoadError(
            f"{name} is an original DeepSeek Janus checkpoint (model_type 'multi_modality'), which needs "
            "the deepseek-ai/Janus package and trust_remote_code. This adapter uses the transformers port: "
            "pass the converted copy instead, e.g. 'deepseek-community/Janus-Pro-7B' or "
            "'deepseek-community/Janus-Pro-1B' (same weights). Janus-4o has no converted copy; convert it "
            "with transformers' convert_janus_weights_to_hf.py and pass the output folder."
        )
    if config.get("model_type") != "janus":
        raise JanusLoadError(f"{name} has model_type {config.get('model_type')!r}, expected 'janus'.")
    return config


def _not_found_message(name: str, revision: str | None, exc: Exception) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    rev = f" (revision {revision})" if revision else ""
    # The original deepseek-ai repos cannot be used; point the download at the converted copy.
    suggested = name
    if name.startswith("deepseek-ai/Janus-Pro"):
        suggested = name.replace("deepseek-ai/", "deepseek-community/", 1)
    if isinstance(exc, (RepositoryNotFoundError, GatedRepoError)) and not constants.is_offline_mode():
        why = f"the hub says the repository does not exist or needs authentication ({type(exc).__name__})."
    else:
        offline = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else "the hub is unreachable"
        why = (f"it is not a local folder, it is not in the local Hugging Face cache "
               f"({constants.HF_HUB_CACHE}), and {offline}.")
    message = (
        f"Janus checkpoint {name!r}{rev} could not be found locally: {why}\n"
        f"Fix: on a machine with network access run\n"
        f"    hf download {suggested} --local-dir /models/{suggested.split('/')[-1]}\n"
        f"(older huggingface_hub: `huggingface-cli download {suggested} --local-dir ...`), copy the folder "
        f"here and pass its path as `path`; or allow hub access (unset HF_HUB_OFFLINE).\n"
        f"Underlying error: {type(exc).__name__}: {exc}"
    )
    if name.startswith(("deepseek-ai/", "FreedomIntelligence/")):
        message += ("\nNote: deepseek-ai/* and Janus-4o checkpoints are original 'multi_modality' "
                    "checkpoints; this adapter needs the converted ones, e.g. deepseek-community/Janus-Pro-7B.")
    return message


def resolve_checkpoint(path: str | os.PathLike, revision: str | None = None) -> Path:
    """Return a local folder holding the checkpoint: ``path`` itself, or its hub snapshot.

    Hub ids are fetched through the normal Hugging Face cache (so offline use works once cached);
    ``config.json`` is read first so that a wrong checkpoint kind fails before a 15 GB download.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise JanusLoadError(f"{folder} has no config.json; it is not a transformers checkpoint folder.")
        _read_config(folder / "config.json", str(folder))
        return folder
    name = str(path)
    if name.startswith(("/", ".", "~")) or name.count("/") != 1:
        raise JanusLoadError(f"Janus checkpoint folder {name!r} does not exist (and it is not a hub id "
                             "like 'deepseek-community/Janus-Pro-7B').")
    try:
        config_file = hf_hub_download(name, "config.json", revision=revision)
        _read_config(Path(config_file), name)
        return Path(snapshot_download(name, revision=revision, allow_patterns=list(WEIGHT_PATTERNS)))
    except JanusLoadError:
        raise
    except Exception as exc:  # offline, unreachable, unknown repo: all need the same advice
        raise JanusLoadError(_not_found_message(name, revision, exc)) from exc


def checkpoint_digest(folder: str | os.PathLike) -> str:
    """sha256 over the safetensors files' bytes, config.json and tokenizer.json (16 hex chars).

    Cached per folder and file (size, mtime), because hashing 15 GB takes a while.
    """
    folder = Path(folder).resolve()
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise JanusLoadError(f"{folder} holds no *.safetensors files; cannot compute a model digest.")
    extras = [folder / n for n in DIGEST_FILES if (folder / n).is_file()]
    key = (str(folder), *((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in weights + extras))
    if key not in _DIGEST_CACHE:
        digest = hashlib.sha256()
        for file in weights:
            digest.update(file.name.encode() + b"\0")
            with open(file, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
        config = json.loads((folder / "config.json").read_text())
        config.pop("transformers_version", None)  # re-saving with another version changes no number
        digest.update(canonical_json(config).encode())
        for extra in extras[1:]:  # tokenizer, generation and processor settings change outputs too
            digest.update(extra.name.encode() + b"\0" + extra.read_bytes())
        _DIGEST_CACHE[key] = digest.hexdigest()[:16]
    return _DIGEST_CACHE[key]


def _pick_device_dtype(device: str, dtype: str | torch.dtype) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if isinstance(dtype, torch.dtype):
        return dev, dtype
    if dtype == "auto":
        return dev, torch.bfloat16 if dev.type == "cuda" else torch.float32
    names = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
             "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use 'auto' or one of {', '.join(names)}")
    return dev, names[dtype]


# ----------------------------------------------------------------------------------------------
# The adapter
