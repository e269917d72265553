"""Saving and loading trained landmark models (safetensors weights + JSON model card).

A saved model is two files side by side: ``NAME.safetensors`` (weights only, loaded safely) and
``NAME.json`` (the model config that rebuilds the architecture, the scheme, the crop enlargement
and the model card: data, split, box source, epochs, hardware, results).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from faceland.errors import FormatError
from faceland.pretrained import DEFAULT_MODEL, PRETRAINED, WEIGHTS_DIR, list_pretrained

if TYPE_CHECKING:  # torch is imported only to build or save a model, not to read cards
    from faceland.models import LandmarkModel

__all__ = ["save_model", "load_model", "read_card", "resolve_weights", "default_model_path",
           "weights_hash", "DEFAULT_MODEL", "ModelCard", "LAYOUT_VERSION", "LAYOUT_1_DEFAULTS"]

#: Version of the architectures' defaults a card is written against. Cards without it (saved
#: before the 2026-12 fidelity pass, docs/fidelity.md) get the earlier defaults filled in by
#: :func:`load_model` (:data:`LAYOUT_1_DEFAULTS`), so that runs trained then still load.
LAYOUT_VERSION = 2
#: The earlier defaults, per architecture, of options whose default changed in layout 2. IACT's
#: earlier convolution branch was not kept: its layout-1 weights do not load.
LAYOUT_1_DEFAULTS: dict[str, dict] = {
    "hourglass": {"block": "bottleneck", "stem_blocks": 2, "attention_reduction": None},
    "repformer": {"top_memory": "attention", "key_pos": False},
    "token_regression": {"tokenizer": "grid"},
    "imm_nose_cnn": {"channels": [16, 32, 32, 64], "kernels": [5, 5, 3, 3],
                     "pools": [True] * 4, "padding": "same", "hidden": 128, "input_hw": None},
    "imm_face_cnn": {"channels": [16, 32, 32, 64, 64, 128], "kernels": [5, 5, 3, 3, 3, 3],
                     "pools": [True] * 5 + [False], "padding": "same", "hidden": 256,
                     "input_hw": None},
    "unet_softmax": {"loss": "cross_entropy"},
}

_CARD_ORDER = ("config", "scheme", "input_size", "enlarge", "box_source", "training",
               "weights_sha256", "layout_version", "name", "terms", "onnx", "results",
               "result_commands")


@dataclass
class ModelCard:
    """The model card saved beside trained weights (``NAME.json``), typed.

    Attributes:
        config: the keyword arguments that rebuild the architecture with
            :func:`faceland.models.create_model`, its registry ``name`` included.
        scheme: landmark scheme name (``"68"``, ...).
        input_size: crop side N in pixels.
        enlarge: crop side / box side used in training and inference (1.25 by default).
        box_source: the training crops' box, in words.
        training: the training record (config, data counts, epochs, wall time, command).
        weights_sha256: first 16 hex digits of the weights' SHA-256.
        layout_version: the parameter layout the weights were saved with (absent: 1, before
            the fidelity pass; :data:`LAYOUT_1_DEFAULTS` rebuilds those).
        name: the model's name (shipped models: their table name; runs: the run folder).
        terms: the data sets' terms the weights inherit.
        onnx: the shipped ONNX graph's file, hashes and graph version, if any.
        results, result_commands: headline results and the commands that produced them.
        extra: further keys of the JSON object, in order.
        path: the weights file the card belongs to (not written to JSON).

    A card also reads like the JSON object it is written as (``card["scheme"]``,
    ``card.get("onnx")``, ``"results" in card``): the keys of :meth:`to_dict`.
    """

    config: dict
    scheme: str | None = None
    input_size: int | None = None
    enlarge: float | None = None
    box_source: str | None = None
    training: dict | None = None
    weights_sha256: str | None = None
    layout_version: int | None = None
    name: str | None = None
    terms: str | None = None
    onnx: dict | None = None
    results: dict | None = None
    result_commands: dict | None = None
    extra: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def architecture(self) -> str | None:
        """The registered architecture name (``config["name"]``)."""
        return self.config.get("name")

    def to_dict(self) -> dict:
        """The JSON object (fields that are ``None`` left out, then ``extra``)."""
        d = {k: getattr(self, k) for k in _CARD_ORDER if getattr(self, k) is not None}
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict, path: str | Path | None = None) -> ModelCard:
        """A card from its JSON object (unknown keys kept in ``extra``, keys starting with
        ``_`` dropped).

        Raises:
            faceland.errors.FormatError: no ``config`` object.
        """
        cfg = d.get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
            raise FormatError(f"{path or 'model card'}: not a faceland model card (needs a "
                              "'config' object with the architecture 'name')")
        names = {f.name for f in fields(cls)} - {"extra", "path"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and not k.startswith("_")}
        return cls(**known, extra=extra, path=Path(path) if path else None)

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key) if key in _CARD_ORDER else self.extra.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` over the keys of :meth:`to_dict`."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def keys(self):  # noqa: ANN201  (a dict keys view)
        return self.to_dict().keys()

    def items(self):  # noqa: ANN201  (a dict items view)
        return self.to_dict().items()

def default_model_path() -> Path:
    """Path of the shipped default model's ``.safetensors`` (inside the installed package;
    :data:`faceland.pretrained.DEFAULT_MODEL`)."""
    return PRETRAINED[DEFAULT_MODEL].weights


def save_model(model: LandmarkModel, path: str | Path, card: dict | ModelCard | None = None
               ) -> Path:
    """Write ``path`` (``.safetensors``) and its ``.json`` card (``model.config`` as the card's
    ``config``, the weights' hash added); returns the weights path."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    save_file(state, str(path))
    extra = card.to_dict() if isinstance(card, ModelCard) else dict(card or {})
    meta = {"config": model.config, **{k: v for k, v in extra.items() if k != "config"}}
    meta["weights_sha256"] = weights_hash(path)
    meta["layout_version"] = LAYOUT_VERSION
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def weights_hash(path: str | Path) -> str:
    """SHA-256 of a weights file (first 16 hex digits), for protocol cards."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resolve_weights(path: str | Path | None = None) -> Path:
    """The ``.safetensors`` file meant by ``path``: a file, the name of a shipped model
    (:data:`faceland.pretrained.PRETRAINED`, or any ``NAME.safetensors`` in the package's
    ``weights/`` folder), or ``None`` / ``"default"`` for the shipped default.

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
            # a model placed in the package's weights/ folder but not (yet) in the table, e.g.
            # by scripts/release_model.py before the table entry is written
            cand = WEIGHTS_DIR / f"{p}.safetensors"
            p = cand if cand.exists() else p.with_suffix(".safetensors")
            if not p.exists():
                raise FileNotFoundError(f"{path}: neither a weights file nor a shipped model "
                                        f"(shipped: {', '.join(list_pretrained())})")
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model weights file")
    return p


def read_card(path: str | Path | None = None) -> tuple[Path, ModelCard]:
    """``(weights path, card)`` of saved weights (see :func:`resolve_weights`), without
    building the model; the card's ``path`` is the weights file and it always has a ``name``.

    Raises:
        FileNotFoundError: no weights file or no card beside it.
        faceland.errors.FormatError: a card that is not a JSON object with a ``config``.
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
    typed = ModelCard.from_dict(card, card_path)
    typed.path = p
    if not isinstance(typed.name, str) or not typed.name:
        typed.name = p.parent.name if p.stem == "model" else p.stem  # runs/<run>/model
    return p, typed


def load_model(path: str | Path | None = None) -> tuple[LandmarkModel, ModelCard]:
    """Load a saved model in eval mode.

    Args:
        path: a ``.safetensors`` file (its ``.json`` must lie beside it), the name of a model in
            the package's ``weights/`` folder, ``"default"`` or ``None`` (the shipped default).

    Returns:
        ``(model, card)``: the model and its :class:`ModelCard`.

    Raises:
        FileNotFoundError: no such weights file or card (the message names the path).
        faceland.errors.FormatError: a corrupt weights file or card.
        ValueError: the weights do not match the architecture in the card.
    """
    p, card = read_card(path)
    card_path = p.with_suffix(".json")
    cfg = dict(card.config)
    if int(card.layout_version or 1) < 2:  # saved before the fidelity pass
        for k, v in LAYOUT_1_DEFAULTS.get(cfg["name"], {}).items():
            cfg.setdefault(k, v)
    full_config = dict(cfg)  # with the layout filled in: a re-saved model keeps its layout
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
    model.config = full_config
    return model.eval(), card
