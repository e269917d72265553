"""The shipped pretrained models: one table, read by ``faceland models`` and by name lookup.

Beside the architecture registry (:func:`faceland.models.create_model`) this table says which
trained weights ship inside the package (``faceland/weights/``), for which architecture,
landmark scheme and input size, and what they were trained on. Each entry's files are the
weights (``NAME.safetensors``), the model card (``NAME.json``: the architecture config and the
training record) and, where exported, the ONNX graph (``NAME.onnx``). The test suite checks
every entry against its card and every weights file against the table.

All shipped weights were trained on research-only data sets (300W, MTFL, IMM) and inherit their
terms: non-commercial research use only.

Torch-free: listing and resolving names imports no deep-learning framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceland.errors import UnknownNameError

__all__ = ["PretrainedModel", "PRETRAINED", "DEFAULT_MODEL", "WEIGHTS_DIR", "get_pretrained",
           "list_pretrained"]

#: Folder of the shipped weights inside the installed package.
WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model.

    Attributes:
        name: the name accepted by ``--model`` and :func:`faceland.checkpoint.load_model`.
        architecture: its registered architecture (:func:`faceland.models.create_model`).
        scheme: landmark scheme name (``"68"``, ``"58"``, ``"1"``).
        input_size: side N of the square crop, pixels.
        summary: one line: what it is and its headline result (details in the card).
        onnx: whether an exported ONNX graph ships beside the weights.
        default: the model used when none is named.
    """

    name: str
    architecture: str
    scheme: str
    input_size: int
    summary: str
    onnx: bool = True
    default: bool = False

    @property
    def files(self) -> tuple[Path, ...]:
        """Its files in :data:`WEIGHTS_DIR`: weights, card and, if any, the ONNX graph."""
        names = [f"{self.name}.safetensors", f"{self.name}.json"]
        if self.onnx:
            names.append(f"{self.name}.onnx")
        return tuple(WEIGHTS_DIR / n for n in names)

    @property
    def weights(self) -> Path:
        """Path of the ``.safetensors`` weights."""
        return self.files[0]


_MODELS = (
    PretrainedModel("faceland-300w-mtfl-mnv2dw-128", "integral", "68", 128,
                    "MobileNetV2 + depthwise soft-argmax head, 300W + MTFL; "
                    "300W common 3.26 % IOD NME, YouTube-Faces 5.98 %", default=True),
    PretrainedModel("faceland-300w-mnv2-integral-128", "integral", "68", 128,
                    "MobileNetV2 + soft-argmax head, 300W train; 300W common 3.18 % IOD NME"),
    PretrainedModel("faceland-300w-mnv2-integral-256", "integral", "68", 256,
                    "MobileNetV2 + soft-argmax head at 256 px (the distillation teacher, 4x the "
                    "FLOPs of 128 px), 300W train; 300W common 3.05 % IOD NME, YouTube-Faces "
                    "6.28 %"),
    PretrainedModel("faceland-300w-repformer-mnv2-128", "repformer", "68", 128,
                    "seed 002 RePFormer (PTH + DLR, tau 100), MobileNetV2; 300W common 3.61 %"),
    PretrainedModel("faceland-300w-hourglass-2x64-128", "hourglass", "68", 128,
                    "seed 001 stacked hourglass, 2 x 64 channels, from scratch; 300W common "
                    "4.96 %"),
    PretrainedModel("faceland-imm58-cnn-128", "imm_face_cnn", "58", 128,
                    "seed 004 58-point CNN (compact layout), IMM; IMM test 6.32 % IOD NME"),
    PretrainedModel("faceland-imm-nose-cnn-64", "imm_nose_cnn", "1", 64,
                    "seed 004 nose-tip CNN (compact layout), IMM; IMM test 2.17 % box NME"),
)

#: Shipped models by name.
PRETRAINED: dict[str, PretrainedModel] = {m.name: m for m in _MODELS}

#: Name of the default model.
DEFAULT_MODEL: str = next(m.name for m in _MODELS if m.default)


def list_pretrained() -> list[str]:
    """Names of the shipped models, the default first."""
    return [m.name for m in sorted(_MODELS, key=lambda m: not m.default)]


def get_pretrained(name: str) -> PretrainedModel:
    """The table entry of a shipped model.

    Raises:
        faceland.errors.UnknownNameError: no such shipped model (the message lists them).
    """
    if name not in PRETRAINED:
        raise UnknownNameError(f"no shipped model named {name!r}; shipped: {list_pretrained()}")
    return PRETRAINED[name]
