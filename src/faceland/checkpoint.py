"""Saving and loading trained landmark models (safetensors weights + JSON model card).

A saved model is two files side by side: ``NAME.safetensors`` (weights only, loaded safely) and
``NAME.json`` (the model config that rebuilds the architecture, the scheme, the crop enlargement
and the model card: data, split, box source, epochs, hardware, results).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from faceland.errors import FormatError
from faceland.pretrained import DEFAULT_MODEL, PRETRAINED, list_pretrained

if TYPE_CHECKING:  # torch is imported only to build or save a model, not to read cards
    from faceland.models import LandmarkModel

__all__ = ["save_model", "load_model", "read_card", "resolve_weights", "default_model_path",
           "weights_hash", "DEFAULT_MODEL"]

def default_model_path() -> Path:
    """Path of the shipped default model's ``.safetensors`` (inside the installed package;
    :data:`faceland.pretrained.DEFAULT_MODEL`)."""
    return PRETRAINED[DEFAULT_MODEL].weights


def save_model(model: LandmarkModel, path: str | Path, card: dict | None = None) -> Path:
    """Write ``path`` (``.safetensors``) and its ``.json`` card; returns the weights path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    save_file(state, str(path))
    meta = {"config": model.config, **(card or {})}
    meta["weights_sha256"] = weights_hash(path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def weights_hash(path: str | Path) -> str:
    """SHA-256 of a weights file (first 16 hex digits), for protocol cards."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resolve_weights(path: str | Path | None = None) -> Path:
    """The ``.safetensors`` file meant by ``path``: a file, the name of a shipped model
    (:data:`faceland.pretrained.PRETRAINED`), or ``None`` / ``"default"`` for the shipped
    default.

    Raises:
        FileNotFoundError: no such weights file (the message names the path; for a bare name,
            also the shipped models).
    """
    if path is None or str(path) == "default":
        p = default_model_path()
    elif str(path) in PRETRAINED:
        p = PRETRAINED[str(path)].weights
    else:
        p = Path(path)
        if not p.exists() and not p.suffix:
            p = p.with_suffix(".safetensors")
            if not p.exists():
                raise FileNotFoundError(f"{path}: neither a weights file nor a shipped model "
                                        f"(shipped: {', '.join(list_pretrained())})")
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model weights file")
    return p


def read_card(path: str | Path | None = None) -> tuple[Path, dict]:
    """``(weights path, card)`` of saved weights (see :func:`resolve_weights`), without
    building the model; the card gets ``_path`` and a ``name``.

    Raises:
        FileNotFoundError: no weights file or no card beside it.
        faceland.errors.FormatError: a card that is not a JSON object.
    """
    p = resolve_weights(path)
    card_path = p.with_suffix(".json")
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path}: model card (architecture config) missing")
    try:
        card = json.loads(card_path.read_text())
    except ValueError as e:
        raise FormatError(f"{card_path}: not a faceland model card ({e})") from None
    if not isinstance(card, dict):
        raise FormatError(f"{card_path}: not a faceland model card (not a JSON object)")
    card["_path"] = str(p)
    if not isinstance(card.get("name"), str) or not card["name"]:
        card["name"] = p.parent.name if p.stem == "model" else p.stem  # runs/<run>/model
    return p, card


def load_model(path: str | Path | None = None) -> tuple[LandmarkModel, dict]:
    """Load a saved model in eval mode.

    Args:
        path: a ``.safetensors`` file (its ``.json`` must lie beside it), the name of a model in
            the package's ``weights/`` folder, ``"default"`` or ``None`` (the shipped default).

    Returns:
        ``(model, card)``: the model and its JSON card.

    Raises:
        FileNotFoundError: no such weights file or card (the message names the path).
        faceland.errors.FormatError: a corrupt weights file or card.
        ValueError: the weights do not match the architecture in the card.
    """
    p, card = read_card(path)
    card_path = p.with_suffix(".json")
    cfg = card.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
        raise FormatError(f"{card_path}: not a faceland model card (needs a 'config' object "
                          "with the architecture 'name')")
    cfg = dict(cfg)
    cfg.pop("pretrained", None)
    try:
        from faceland.models import create_model

        model = create_model(cfg.pop("name"), pretrained=False, **cfg)
    except TypeError as e:  # an argument the architecture does not take
        raise FormatError(f"{card_path}: config does not fit the architecture ({e})") from None
    try:
        from safetensors.torch import load_file

        state = load_file(str(p))
    except SafetensorError as e:
        raise FormatError(f"{p}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{p}: weights do not match the architecture in {card_path}: "
                         f"{str(e).splitlines()[0]}") from None
    model.config = card["config"]
    card["_path"] = str(p)
    card.setdefault("name", p.parent.name if p.stem == "model" else p.stem)  # runs/<run>/model
    return model.eval(), card
