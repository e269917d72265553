"""Saving and loading trained landmark models (safetensors weights + JSON model card).

A saved model is two files side by side: ``NAME.safetensors`` (weights only, loaded safely) and
``NAME.json`` (the model config that rebuilds the architecture, the scheme, the crop enlargement
and the model card: data, split, box source, epochs, hardware, results).
"""

from __future__ import annotations

import hashlib
import json
import math
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
           "weights_hash", "DEFAULT_MODEL", "ModelCard", "LAYOUT_VERSION", "LAYOUT_1_DEFAULTS",
           "MIN_INPUT_SIZE", "MAX_INPUT_SIZE", "MAX_ENLARGE", "write_card"]

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

#: The crop sides (pixels) a model card or a training config may give as ``input_size``.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 4096
#: The largest crop enlargement (crop side / box side) a card or a training config may give.
MAX_ENLARGE = 10.0

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

    @property
    def flip_x_offset(self) -> float:
        """The labels' left-right bias the model was trained with (normalised crop units, see
        :attr:`faceland.transforms.AugmentConfig.flip_x_offset`; 0 when the card records none)."""
        aug = (self.training or {}).get("augment") or {}
        return float(aug.get("flip_x_offset", 0.0) or 0.0) if isinstance(aug, dict) else 0.0

    def to_dict(self) -> dict:
        """The JSON object (fields that are ``None`` left out, then ``extra``)."""
        d = {k: getattr(self, k) for k in _CARD_ORDER if getattr(self, k) is not None}
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: dict, path: str | Path | None = None) -> ModelCard:
        """A card from its JSON object (unknown keys kept in ``extra``, keys starting with
        ``_`` dropped).

        Raises:
            faceland.errors.FormatError: not a JSON object, no ``config`` object, or a field of
                the wrong type or out of range (:func:`check_card_fields`).
        """
        where = path or "model card"
        if not isinstance(d, dict):
            raise FormatError(f"{where}: not a faceland model card (a JSON object is needed, not "
                              f"{_json_kind(d)})")
        cfg = d.get("config")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
            raise FormatError(f"{where}: not a faceland model card (needs a "
                              "'config' object with the architecture 'name')")
        check_card_fields(d, where)
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

def _json_kind(value: object) -> str:
    """How JSON calls the kind of ``value`` (``"a list"``, ``"a string"``, ...)."""
    for kind, words in ((bool, "true/false"), (dict, "an object"), (list, "a list"),
                        (str, "a string"), (int, "a number"), (float, "a number")):
        if isinstance(value, kind):
            return words
    return "null" if value is None else type(value).__name__


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: The card's typed fields: ``(key, JSON kinds, test of the value or None, rule in words)``.
_CARD_FIELDS: tuple[tuple[str, tuple[type, ...], Any, str], ...] = (
    ("scheme", (str,), None, "a string"),
    ("input_size", (int,), lambda v: MIN_INPUT_SIZE <= v <= MAX_INPUT_SIZE,
     f"a whole number of pixels in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}]"),
    ("enlarge", (int, float), lambda v: math.isfinite(v) and 0 < v <= MAX_ENLARGE,
     f"a number in (0, {MAX_ENLARGE:g}]"),
    ("box_source", (str,), None, "a string"),
    ("training", (dict,), None, "an object"),
    ("weights_sha256", (str,), None, "a string"),
    ("layout_version", (int,), lambda v: v >= 1, "a whole number >= 1"),
    ("name", (str,), None, "a string"),
    ("terms", (str,), None, "a string"),
    ("onnx", (dict,), None, "an object"),
    ("results", (dict,), None, "an object"),
    ("result_commands", (dict,), None, "an object"),
)
#: Checked keys of the card's ``config`` (the architecture's arguments the card relies on).
_CONFIG_FIELDS = (
    ("input_size", (int,), _CARD_FIELDS[1][2], _CARD_FIELDS[1][3]),
    ("num_points", (int,), lambda v: 1 <= v <= 10_000, "a whole number in [1, 10000]"),
)


def check_card_fields(d: dict, where: str | Path = "model card") -> None:
    """Check the typed fields of a card's JSON object (absent or ``null`` fields are fine):
    kinds and ranges (``input_size`` a whole number of pixels in a sensible range, ``enlarge``
    a finite positive number, ...), and the ``input_size`` / ``num_points`` of its ``config``.

    Raises:
        faceland.errors.FormatError: the first bad field, in one line naming ``where`` (the
            card file) and the field.
    """
    for block, spec in ((d, _CARD_FIELDS), (d.get("config") or {}, _CONFIG_FIELDS)):
        prefix = "config." if block is not d else ""
        for key, kinds, test, rule in spec:
            value = block.get(key)
            if value is None:
                continue
            ok = isinstance(value, kinds) and not isinstance(value, bool)
            ok = ok and (test is None or test(value))
            if not ok:
                raise FormatError(f"{where}: model card field '{prefix}{key}' must be {rule}, "
                                  f"got {json.dumps(value)[:60]}")


def default_model_path() -> Path:
    """Path of the shipped default model's ``.safetensors`` (inside the installed package;
    :data:`faceland.pretrained.DEFAULT_MODEL`)."""
    return PRETRAINED[DEFAULT_MODEL].weights


def save_model(model: LandmarkModel, path: str | Path, card: dict | ModelCard | None = None
               ) -> Path:
    """Write ``path`` (``.safetensors``) and its ``.json`` card (``model.config`` as the card's
    ``config``, the weights' hash and layout version added), each atomically and never through
    a link (:mod:`faceland.outputs`); returns the weights path.

    Raises:
        faceland.errors.FormatError: a card field of the wrong type or range
            (:func:`check_card_fields`), before anything is written.
        OSError: the files cannot be written.
    """
    from safetensors.torch import save_file

    from faceland.outputs import atomic_path

    path = Path(path).with_suffix(".safetensors")
    given = card.to_dict() if isinstance(card, ModelCard) else dict(card or {})
    typed = ModelCard.from_dict({**given, "config": model.config}, path.with_suffix(".json"))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    typed.weights_sha256, typed.layout_version = weights_hash(path), LAYOUT_VERSION
    write_card(path.with_suffix(".json"), typed)
    return path


def write_card(path: str | Path, card: dict | ModelCard) -> Path:
    """Write a model card JSON (``NAME.json`` beside the weights) atomically and never through
    a link (:mod:`faceland.outputs`), its fields checked first and written in the card's order;
    returns the path.

    Raises:
        faceland.errors.FormatError: not a card, or a field of the wrong type or range
            (:meth:`ModelCard.from_dict`), before anything is written.
        OSError: the file cannot be written.
    """
    from faceland.outputs import atomic_write_json

    p = Path(path)
    typed = ModelCard.from_dict(card.to_dict() if isinstance(card, ModelCard) else card, p)
    atomic_write_json(p, typed.to_dict())
    return p


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
        faceland.errors.FormatError: a file that is not ``.safetensors`` (e.g. a photo).
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
    if p.is_dir():
        inside = p / "model.safetensors"
        hint = f"; did you mean {inside}?" if inside.exists() else ""
        raise FileNotFoundError(f"{p}: is a folder, not a model weights file (.safetensors){hint}")
    if p.suffix.lower() != ".safetensors":
        raise FormatError(f"{p}: not model weights: give a .safetensors file (its .json card "
                          "beside it), an exported .onnx graph, or a shipped model name")
    return p


def read_card(path: str | Path | None = None) -> tuple[Path, ModelCard]:
    """``(weights path, card)`` of saved weights (see :func:`resolve_weights`), without
    building the model; the card's ``path`` is the weights file and it always has a ``name``.

    Raises:
        FileNotFoundError: no weights file or no card beside it.
        faceland.errors.FormatError: a card that is not a JSON object with a ``config``, or a
            field of the wrong kind or out of range (:func:`check_card_fields`).
    """
    p = resolve_weights(path)
    card_path = p.with_suffix(".json")
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path}: model card (architecture config) missing")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FormatError(f"{card_path}: not a faceland model card ({e})") from None
    except OSError as e:
        raise FormatError(f"{card_path}: the model card cannot be read ({e.strerror or e})") \
            from None
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
        faceland.errors.FormatError: a corrupt weights file or card, a card whose config names
            an unknown architecture or argument, or values the architecture rejects.
        ValueError: the weights do not match the architecture in the card.
    """
    from faceland.errors import require_extra

    require_extra("loading weights into PyTorch (load_model)")
    p, card = read_card(path)
    card_path = p.with_suffix(".json")
    cfg = dict(card.config)
    if int(card.layout_version or 1) < 2:  # saved before the fidelity pass
        for k, v in LAYOUT_1_DEFAULTS.get(cfg["name"], {}).items():
            cfg.setdefault(k, v)
    full_config = dict(cfg)  # with the layout filled in: a re-saved model keeps its layout
    cfg.pop("pretrained", None)
    from faceland.errors import UnknownNameError
    from faceland.models import create_model
    from faceland.models.base import model_parameters, unknown_key_message

    name = cfg.pop("name")
    try:
        params = model_parameters(name)
    except UnknownNameError as e:
        raise FormatError(f"{card_path}: config name: {e}") from None
    for key in cfg:
        if params is not None and key not in params:
            raise FormatError(f"{card_path}: "
                              + unknown_key_message(f"config of architecture {name!r}", key, params))
    try:
        model = create_model(name, pretrained=False, **cfg)
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, ZeroDivisionError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FormatError(f"{card_path}: config does not fit the architecture {name!r} ({text})") \
            from None
    try:
        from safetensors.torch import load_file

        state = load_file(str(p))
    except SafetensorError as e:
        raise FormatError(f"{p}: not a readable safetensors file ({e})") from None
    except OSError as e:
        raise FormatError(f"{p}: the weights file cannot be read ({e.strerror or e})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{p}: weights do not match the architecture in {card_path}: "
                         f"{str(e).splitlines()[0]}") from None
    model.config = full_config
    return model.eval(), card
