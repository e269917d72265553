"""The interface every faceland landmark model implements, and the model registry."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass

import numpy as np
import torch
from torch import nn

from faceland.errors import UnknownNameError

__all__ = ["LandmarkModel", "register_model", "create_model", "list_models", "MODEL_REGISTRY",
           "SMOKE_KWARGS", "model_parameters", "unknown_key_message"]

MODEL_REGISTRY: dict[str, Callable[..., LandmarkModel]] = {}
#: Small keyword arguments per model for fast forward/backward tests (tiny input, no download).
SMOKE_KWARGS: dict[str, dict] = {}

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class LandmarkModel(nn.Module):
    """Base class: a face crop in, landmarks in normalised crop coordinates out.

    Input: ``(B, 3, N, N)`` float RGB in ``[0, 1]`` (see
    :func:`faceland.data.crops.image_to_tensor`); the ImageNet normalisation happens inside.

    ``forward`` returns a dict with at least ``"coords"``: ``(B, K, 2)`` normalised crop
    coordinates ``(u + 0.5) / N`` (0 and 1 are the crop's outer pixel edges). Heatmap models
    add ``"scores"``: ``(B, K)`` per-landmark confidence in ``[0, 1]`` (higher: more likely
    right; see each model). Models may add training outputs (``"heatmaps"``, ``"stages"``);
    :meth:`loss` consumes them.

    Attributes:
        num_points: K.
        input_size: N, the side of the square input in pixels.
        config: the keyword arguments that rebuild the model with :func:`create_model`.
    """

    num_points: int
    input_size: int
    config: dict

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("luma", torch.tensor(_LUMA).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` RGB -> ImageNet-normalised input."""
        return (x - self.pixel_mean) / self.pixel_std

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` ``[0, 1]`` RGB -> ``(B, 1, H, W)`` grey ``0.299 R + 0.587 G + 0.114 B
        - 0.5`` in ``[-0.5, 0.5]`` (seed 004's input: grey, ``im / 255 - 0.5``)."""
        return (x * self.luma).sum(1, keepdim=True) - 0.5

    def loss(self, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Training loss from ``forward``'s output and ``(B, K, 2)`` normalised targets."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, N, N)`` in ``[0, 1]`` -> ``(B, K, 2)`` normalised crop coordinates."""
        return self(x)["coords"]

    @torch.no_grad()
    def predict_with_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, 3, N, N)`` in ``[0, 1]`` -> ``(B, K, 2)`` normalised crop coordinates and
        ``(B, K)`` per-landmark confidence in ``[0, 1]`` (``None`` for models without one, e.g.
        direct coordinate regression)."""
        out = self(x)
        return out["coords"], out.get("scores")

    runtime = "torch"

    def predict_crops_with_scores(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The landmark-runtime call (:class:`faceland.runtimes.LandmarkRunner`), eager
        PyTorch on the model's device: ``(B, N, N, 3)`` uint8 RGB crops -> ``(B, K, 2)`` float32
        normalised crop coordinates and ``(B, K)`` float32 scores (or ``None``)."""
        from faceland.data.crops import image_to_tensor

        c, s = self.predict_with_scores(image_to_tensor(crops).to(self.pixel_mean.device))
        return (c.float().cpu().numpy(), None if s is None else s.float().cpu().numpy())


def register_model(name: str, smoke: dict | None = None) -> Callable:
    """Decorator: register a model factory under ``name``.

    Every factory accepts ``num_points``, ``input_size`` and ``pretrained`` keyword arguments.
    ``smoke`` gives small keyword arguments (tiny input, small widths) with which the test suite
    runs forward and backward on every registered model.
    """

    def deco(fn: Callable[..., LandmarkModel]) -> Callable[..., LandmarkModel]:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        MODEL_REGISTRY[name] = fn
        SMOKE_KWARGS[name] = dict(smoke or {})
        return fn

    return deco


def create_model(name: str, **kwargs) -> LandmarkModel:
    """Build a registered model.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
    """
    if name not in MODEL_REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; registered: {list_models()}")
    model = MODEL_REGISTRY[name](**kwargs)
    # typed sub-configs (e.g. faceland.codecs.CodecConfig) are stored as plain dicts (JSON cards)
    model.config = {"name": name, **{k: asdict(v) if is_dataclass(v) and not isinstance(v, type)
                                     else v for k, v in kwargs.items()}}
    return model


def list_models() -> list[str]:
    """Names of all registered models."""
    return sorted(MODEL_REGISTRY)


#: Keyword arguments every factory takes from the training run itself, never from ``model_args``.
RUN_ARGS = ("num_points", "input_size")


def model_parameters(name: str) -> dict[str, inspect.Parameter] | None:
    """The keyword arguments the factory of registered model ``name`` accepts, with their
    defaults and annotations (strings): the factory's own, and, for a factory that forwards
    ``**kwargs``, those of the class its return annotation names (the factory's defaults win).

    Returns:
        ``None`` when they cannot be known (a ``**kwargs`` that goes to an unnamed callable).

    Raises:
        UnknownNameError: unknown name.
    """
    if name not in MODEL_REGISTRY:
        raise UnknownNameError(f"unknown model {name!r}; registered: {list_models()}")
    factory = MODEL_REGISTRY[name]
    sig = inspect.signature(factory)
    named = {k: p for k, p in sig.parameters.items()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return named
    ret = sig.return_annotation
    target = factory.__globals__.get(ret) if isinstance(ret, str) else ret
    if not isinstance(target, type):
        return None
    inner = inspect.signature(target.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in inner.values()):
        return None
    out = {k: p for k, p in inner.items()
           if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return {**out, **named}


def unknown_key_message(where: str, key: str, valid: Iterable[str]) -> str:
    """``"<where> has unknown key 'widht' (did you mean 'width'?); valid keys: a, b, ..."``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where} has unknown key {key!r}{hint}; valid keys: {', '.join(valid) or '(none)'}"
