"""Training with PyTorch Lightning: typed YAML configs, checkpoints, resume, progress, logs.

``faceland train CONFIG`` reads a YAML file into :class:`TrainConfig` (unknown keys are an error),
trains on a training split with model selection on a validation split carved out of it, writes
Lightning checkpoints to ``out_dir/checkpoints`` (``last.ckpt`` every epoch: a killed run resumes
from it when started again with the same command) and finally exports the best checkpoint as
``out_dir/model.safetensors`` + ``model.json``.

Bad input is one line naming the file or key (:class:`ConfigError`, checked at every depth by
:func:`check_config`, the same for YAML and ``--set``); a run that already did its epochs and
exported its model is left alone (:func:`finished_run_message`); an unreadable ``last.ckpt`` is
named, never loaded unsafely (:func:`read_last_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from faceland.checkpoint import (
    MAX_ENLARGE,
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    ModelCard,
    resolve_weights,
    save_model,
)
from faceland.data.crops import CropDataset
from faceland.data.datasets import DATASETS, FaceRecord, load_dataset, load_mtfl, split_train_val
from faceland.errors import FormatError, UnknownNameError
from faceland.losses import weighted_l1_loss
from faceland.metrics import nme
from faceland.models import LandmarkModel, create_model, list_models
from faceland.models.base import RUN_ARGS, model_parameters, unknown_key_message
from faceland.schemes import LandmarkScheme, five_point_matrix, get_scheme
from faceland.transforms import AugmentConfig, TrainAugment

__all__ = ["TrainConfig", "LandmarkModule", "ConfigError", "load_config", "check_config",
           "check_out_dir", "finished_run_message", "read_last_checkpoint", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """A training run. Every field can be set in the YAML file; unknown keys raise.

    Attributes:
        model: registered model name; ``model_args``: its keyword arguments.
        dataset: a :data:`faceland.data.datasets.DATASETS` name (``"300w"``, ``"imm"``, ...;
            those needing an annotation file are evaluation-only here); ``root``: its folder;
            ``split``: training split.
        val_fraction: share of the training split held out for model selection.
        input_size: N; ``enlarge``: crop side = max(box w, h) * enlarge.
        epochs, batch_size, lr, weight_decay: optimisation; ``optimizer``: adam | adamw | rmsprop.
        schedule: ``cosine`` (with linear warm-up of ``warmup_epochs``; with ``max_time_minutes``
            set, the cosine runs over the epochs or the wall-time budget, whichever ends first,
            so that a time-limited CPU run still anneals) or ``step`` (multiply by ``gamma`` at
            each of ``milestones``; ``gamma`` may be a list with one factor per milestone).
        milestone_unit: ``epoch`` (default), ``step``, or ``fraction``: the unit of
            ``milestones``. ``fraction`` milestones are shares of the run in ``[0, 1]``, where
            the run ends at ``epochs`` or at ``max_time_minutes``, whichever comes first (as
            for the cosine), so that a time-limited run decays at the same points of its budget.
        warmup_steps: linear warm-up length in optimizer steps; when > 0 it replaces
            ``warmup_epochs`` (seed 001: 2000 steps).
        augment: :class:`~faceland.transforms.AugmentConfig` fields.
        num_workers: data-loading processes; ``threads``: torch CPU threads.
        out_dir: where checkpoints, logs and the exported model go.
        max_time_minutes: stop (and export) after this wall time; 0 = no limit.
        limit_train_batches: fraction or count of batches per epoch (smoke runs).
        max_images: use only the first ``max_images`` records of the split (0 = all; smoke runs).
        seed: random seed.
        precision: Lightning precision: ``"32"`` or ``"bf16-mixed"`` (bf16 autocast; about
            1.1-1.5x faster training on a CPU with AVX-512 BF16; soft-argmax stays fp32).
        accelerator, devices, num_nodes, strategy: passed to the Lightning ``Trainer``
            (``devices: 4, strategy: ddp`` trains on 4 GPUs, or 4 CPU processes with gloo;
            ``num_nodes`` for several machines launched by ``torchrun`` or SLURM, see
            docs/scaling.md). Under DDP every rank reads its own share of each epoch's order
            (:class:`EpochSampler`), ``batch_size`` is per rank, and rank 0 writes checkpoints
            and the exported model.
        init_from: initialise from saved weights (a shipped model name or a ``.safetensors``
            path): every tensor whose name and shape match is copied, the rest keep their
            initialisation (e.g. a new head); the counts are logged and recorded in the card.
        mtfl: extra wild faces from MTFL (:class:`MtflConfig` fields; empty = none): 68-point
            pseudo-labels of a teacher (``scripts/mtfl_pseudo_labels.py``) weighted by
            ``pseudo_weight`` plus MTFL's real 5 points through
            :func:`faceland.schemes.five_point_matrix` weighted by ``five_weight``; needs a
            coordinate model (``integral`` or ``regression``).
    """

    model: str = "integral"
    model_args: dict = field(default_factory=dict)
    dataset: str = "300w"
    root: str = "../shared/data/300w"
    split: str = "train"
    scheme: str = "68"
    val_fraction: float = 0.1
    input_size: int = 128
    enlarge: float = 1.25
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup_epochs: int = 2
    milestones: list[int] = field(default_factory=list)
    gamma: float | list[float] = 0.1
    milestone_unit: str = "epoch"
    warmup_steps: int = 0
    augment: dict = field(default_factory=dict)
    num_workers: int = 1
    threads: int = 2
    out_dir: str = "runs/default"
    max_time_minutes: float = 0.0
    limit_train_batches: float = 1.0
    max_images: int = 0
    seed: int = 0
    precision: str = "32"
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    init_from: str = ""
    mtfl: dict = field(default_factory=dict)


@dataclass
class MtflConfig:
    """MTFL as extra training faces (see :attr:`TrainConfig.mtfl`).

    Attributes:
        root: the MTFL folder (``train/landmarks5.csv`` and images).
        pseudo: the ``.npz`` of ``scripts/mtfl_pseudo_labels.py`` (teacher's 68 points, image
            pixels, and its 5-point error ``err5``).
        pseudo_weight: loss weight of the 68 pseudo-labelled points (300W's points weigh 1).
        five_weight: loss weight of MTFL's real 5 points.
        max_err5: drop faces whose teacher 5-point error (inter-pupil units) exceeds this.
        max_images: use at most this many MTFL faces (0 = all).
    """

    root: str = "../shared/data/mtfl"
    pseudo: str = ""
    pseudo_weight: float = 0.5
    five_weight: float = 1.0
    max_err5: float = 0.1
    max_images: int = 0


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config.

    Raises:
        FileNotFoundError: missing file.
        ValueError: not YAML, or (:class:`ConfigError`) an unknown key at any depth (typos fail
            loudly), a value of the wrong type or out of range (see :func:`check_config`).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such config file")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{p}{where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: a config must be a YAML mapping")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in raw:
        if key not in known:
            raise ConfigError(str(p), str(key), unknown_key_message("the config", key, known))
    cfg = TrainConfig(**raw)
    check_config(cfg, str(p))
    return cfg


def mtfl_records(mc: MtflConfig) -> list[FaceRecord]:
    """MTFL training faces with teacher pseudo-labels: ``points`` = the teacher's 68 points,
    ``meta["points5"]`` = MTFL's real 5 points (image pixels, 0-based pixel centres), weights in
    ``meta`` (see :class:`faceland.data.crops.CropDataset`); faces whose teacher disagrees with
    the real 5 points by more than ``max_err5`` (inter-pupil units) are dropped.

    Raises:
        FileNotFoundError: no pseudo-label file.
        ValueError: the pseudo-label file names faces that are not in MTFL.
    """
    if not mc.pseudo or not Path(mc.pseudo).exists():
        raise FileNotFoundError(f"mtfl.pseudo: {mc.pseudo!r}: no such file (make it with "
                                "scripts/mtfl_pseudo_labels.py)")
    with np.load(mc.pseudo) as z:
        keys, pts, err = list(z["keys"]), z["points68"], z["err5"]
    by_key = {r.key: r for r in load_mtfl(mc.root, "train")}
    out = []
    for k, p, e in zip(keys, pts, err, strict=True):
        if k not in by_key:
            raise ValueError(f"{mc.pseudo}: face {k!r} is not in {mc.root}/train")
        if e > mc.max_err5:
            continue
        r = by_key[k]
        out.append(FaceRecord(r.image, p.astype(np.float64), key=r.key,
                              meta={**r.meta, "points5": r.points,
                                    "point_weight": mc.pseudo_weight,
                                    "five_weight": mc.five_weight}))
    return out[: mc.max_images] if mc.max_images else out


def init_weights(model: LandmarkModel, source: str) -> dict:
    """Copy every tensor of saved weights ``source`` (a model name or ``.safetensors`` path)
    whose name and shape match into ``model``; returns ``{"source", "copied", "skipped"}``
    counts.

    Raises:
        FileNotFoundError: no such weights.
    """
    from faceland.checkpoint import load_model

    src, _ = load_model(source)
    mine = model.state_dict()
    take = {k: v for k, v in src.state_dict().items() if k in mine and mine[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    info = {"source": str(source), "copied": len(take), "skipped": len(mine) - len(take)}
    log.info("init_from %s: %d tensors copied, %d kept their initialisation", source,
             info["copied"], info["skipped"])
    return info


def train_val_records(cfg: TrainConfig) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """The run's ``(train, validation)`` faces: ``cfg.split`` of ``cfg.dataset`` split by
    :func:`faceland.data.datasets.split_train_val` with ``cfg.val_fraction`` and ``cfg.seed``
    (IMM: by person). Points are image pixels, 0-based pixel centres.

    Raises:
        ValueError: an unknown dataset.
    """
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r} (expected one of "
                         f"{', '.join(DATASETS)})")
    recs, _ = load_dataset(cfg.dataset, cfg.root, cfg.split)
    group = DATASETS[cfg.dataset].group
    if cfg.max_images:
        recs = recs[: cfg.max_images]
    return split_train_val(recs, cfg.val_fraction, cfg.seed, group)


class LandmarkModule(pl.LightningModule):
    """Lightning wrapper: loss from the model, validation NME (IOD, percent) per epoch."""

    def __init__(self, model: LandmarkModel, cfg: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.scheme = get_scheme(cfg.scheme)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []
        self._five = torch.from_numpy(five_point_matrix())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch["image"])
        if self.cfg.mtfl:  # partial / soft labels: weighted L1 on the 68 points and the 5
            coords = out["coords"].float()
            five = torch.einsum("fk,bkd->bfd", self._five.to(coords), coords)
            loss = weighted_l1_loss(coords, batch["target"], batch["weight"]) \
                + weighted_l1_loss(five, batch["target5"], batch["weight5"])
        else:
            loss = self.model.loss(out, batch["target"])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        coords = self.model(batch["image"])["coords"]
        self._val.append((coords.float().cpu().numpy(), batch["target"].cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        pred = np.concatenate([p for p, _ in self._val])
        gt = np.concatenate([g for _, g in self._val])
        self._val.clear()
        # NME is invariant to the crop's similarity transform: normalised crop coords suffice.
        # A one-point scheme (IMM nose tip) has no face size: normalise by the crop side.
        box = np.tile([0.0, 0.0, 1.0, 1.0], (len(gt), 1)) if self.scheme.num_points == 1 else None
        e = nme(pred, gt, self.scheme, self.scheme.default_norm, box)
        self.log("val_nme", float(e.mean() * 100), prog_bar=True)

    def _elapsed_minutes(self) -> float:
        """Training wall time so far, including the time before a resume (Lightning's Timer)."""
        for cb in self.trainer.callbacks:
            if isinstance(cb, pl.callbacks.Timer):
                return (cb.time_elapsed("train") or 0.0) / 60
        return 0.0

    def configure_optimizers(self):
        cfg = self.cfg
        opt = OPTIMIZERS[cfg.optimizer](self.model.parameters(), cfg.lr,
                                        weight_decay=cfg.weight_decay)
        steps = max(1, self.trainer.estimated_stepping_batches)
        per_epoch = max(1, steps // max(1, cfg.epochs))
        warm = cfg.warmup_steps or cfg.warmup_epochs * per_epoch
        factor = SCHEDULES[cfg.schedule](self, steps, per_epoch, warm)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _cosine(self, steps: int, per_epoch: int, warm: int) -> Callable[[int], float]:
        """Linear warm-up over ``warm`` steps, then a cosine from 1 to 0 over the planned steps
        (or over the wall-time budget, ``max_time_minutes``, if it ends first)."""
        cfg = self.cfg

        def f(s: int) -> float:
            if s < warm:
                return (s + 1) / warm
            progress = (s - warm) / max(1, steps - warm)
            if cfg.max_time_minutes:  # anneal by the wall-time budget if it ends first
                progress = max(progress, self._elapsed_minutes() / cfg.max_time_minutes)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return f

    def _step(self, steps: int, per_epoch: int, warm: int) -> Callable[[int], float]:
        """Linear warm-up, then the learning rate times ``gamma`` (one factor, or one per
        milestone) at each of ``milestones`` (in epochs, steps or fractions of the run, the
        latter also of the wall-time budget)."""
        cfg = self.cfg
        unit_of = {"epoch": per_epoch, "step": 1, "fraction": steps}
        if cfg.milestone_unit not in unit_of:
            raise ValueError(f"unknown milestone_unit {cfg.milestone_unit!r} "
                             "(epoch, step or fraction)")
        unit = unit_of[cfg.milestone_unit]
        gammas = cfg.gamma if isinstance(cfg.gamma, list) else [cfg.gamma] * len(cfg.milestones)
        if len(gammas) != len(cfg.milestones):
            raise ValueError(f"gamma: {len(gammas)} factors for {len(cfg.milestones)} milestones")

        def f(s: int) -> float:
            w = (s + 1) / warm if s < warm else 1.0
            done = s / unit  # in milestone units
            if cfg.milestone_unit == "fraction" and cfg.max_time_minutes:
                done = max(done, self._elapsed_minutes() / cfg.max_time_minutes)
            return w * math.prod(g for g, m in zip(gammas, cfg.milestones, strict=True)
                                 if done >= m)
        return f


def _train_augment(ds) -> TrainAugment | None:
    """The training augmenter of ``ds`` (its ``augment``; for a ``ConcatDataset``, that of its
    first part, which all parts share), or ``None`` when it has none."""
    if isinstance(ds, torch.utils.data.ConcatDataset):  # the parts share one augmenter
        ds = ds.datasets[0]
    return getattr(ds, "augment", None)


class EpochSampler(torch.utils.data.Sampler[int]):
    """Shuffled order that depends only on ``(seed, epoch)``; each index carries its epoch.

    Yields ``epoch * n + i``: :class:`EpochIndexed` decodes it and reseeds the augmentation from
    ``(seed, epoch, worker)`` (see :meth:`TrainAugment.set_epoch`), in the main process and in
    every DataLoader worker alike. So an epoch's order and augmentation draws are the same
    whether or not the run was interrupted before it (a resumed run repeats an uninterrupted one
    exactly), however the workers are started.

    Args:
        n: dataset length.
        seed: the run's seed.
        first_epoch: the epoch the run starts (or resumes) at; every further pass over the
            sampler is the next epoch (Lightning makes one pass per epoch, the first one before
            it has restored its own loop counters, so they cannot be asked).
        rank, world_size: distributed training: rank ``r`` takes positions ``r, r + W, ...``
            of the epoch's order (the order is the same on every rank), each rank the same
            count ``n // W`` so that every rank makes the same number of steps.
    """

    def __init__(self, n: int, seed: int, first_epoch: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {rank}, {world_size}")
        self.n, self.seed, self._next = n, seed, first_epoch
        self.rank, self.world_size = rank, world_size

    def __iter__(self):
        e, self._next = self._next, self._next + 1
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
        order = torch.randperm(self.n, generator=g).tolist()
        mine = order[self.rank::self.world_size][: len(self)]
        return iter([e * self.n + i for i in mine])

    def __len__(self) -> int:
        return self.n // self.world_size


class EpochIndexed(torch.utils.data.Dataset):
    """Wraps a training dataset for :class:`EpochSampler`: index ``epoch * n + i`` -> item
    ``i``, drawn with epoch ``epoch``'s augmentation stream of this process / worker."""

    def __init__(self, dataset, augment: TrainAugment | None) -> None:
        self.dataset, self.augment, self.n = dataset, augment, len(dataset)
        self._stream: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, j: int):
        epoch, i = divmod(int(j), self.n)
        if self.augment is not None:
            info = torch.utils.data.get_worker_info()
            stream = (epoch, info.id + 1 if info else 0)
            if stream != self._stream:
                self.augment.set_epoch(*stream)
                self._stream = stream
        return self.dataset[i]


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT / SIGTERM; the same command resumes from ``checkpoint``."""

    def __init__(self, epochs_done: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted after {epochs_done} finished epoch(s)")
        self.epochs_done, self.checkpoint = epochs_done, checkpoint


class EpochCheckpoint(pl.callbacks.Checkpoint):
    """``last.ckpt`` at the end of **every** epoch (written atomically), whether or not the
    validation NME improved; on SIGINT / SIGTERM also ``interrupted.ckpt`` (the mid-epoch state,
    for inspection: a resume starts from ``last.ckpt``, the end of the last finished epoch,
    because a shuffled epoch cannot be resumed half-way reproducibly).

    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so that Lightning runs it after the
    ``ModelCheckpoint`` listed before it: ``last.ckpt`` then records the best checkpoint as of
    its own epoch (as a plain callback it ran first and recorded the previous epoch's, so a
    resumed run could look for a best checkpoint that had since been deleted)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # full state; all ranks call, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("last.ckpt")


    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt | SystemExit):
            try:
                trainer.save_checkpoint(self.path.with_name("interrupted.ckpt"), weights_only=False)
            except Exception as e:  # never mask the interruption itself
                log.warning("could not write interrupted.ckpt: %s", e)


class WeightsAgree(pl.Callback):
    """Distributed training: at the end, every rank's parameter checksum is gathered and
    compared (DDP keeps replicas identical; this records that it did)."""

    def __init__(self) -> None:
        self.checksums: list[float] | None = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size < 2:
            return
        local = torch.stack([p.detach().double().sum() for p in pl_module.parameters()]).sum()
        gathered = trainer.strategy.all_gather(local.float().reshape(1))
        self.checksums = [float(x) for x in gathered.reshape(-1)]


class ConfigError(ValueError):
    """A bad value or key in a training config, reported in one line ``"<source>: <problem>"``.

    Attributes:
        source: where the config came from (its file, or ``--set KEY=VALUE``).
        key: the top-level config key the problem is under (``"model_args"`` for a key inside
            it), so that a command line can name the ``--set`` item that set it.
        problem: the message without its source.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source, self.key, self.problem = source, key, problem


#: Optimizers by config name (``optimizer``).
OPTIMIZERS: dict[str, type] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                               "rmsprop": torch.optim.RMSprop}
#: Learning-rate schedules by config name (``schedule``): ``(module, steps, steps per epoch,
#: warm-up steps) -> step -> factor``.
SCHEDULES: dict[str, Callable] = {"cosine": LandmarkModule._cosine, "step": LandmarkModule._step}
MILESTONE_UNITS = ("epoch", "step", "fraction")
#: AugmentConfig fields that are probabilities (in ``[0, 1]``).
AUGMENT_PROBABILITIES = ("flip", "color_jitter", "blur", "erase", "grayscale", "downscale", "jpeg",
                         "motion_blur", "defocus", "noise")
#: The value kinds a YAML value can have, by the names annotations use.
_YAML_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "dict": "dict",
               "Mapping": "dict", "list": "list", "tuple": "list", "Sequence": "list",
               "None": "null", "NoneType": "null"}


def _kinds(annotation: object) -> list[str]:
    """The YAML kinds (``int``, ``float``, ``bool``, ``str``, ``dict``, ``list``, ``null``) a
    field or parameter annotation allows; empty when it names none (anything goes). Other
    classes in a union (``str | dict | CodecConfig``) cannot come from YAML and are left out."""
    if annotation is inspect.Parameter.empty:
        return []
    if not isinstance(annotation, str):
        annotation = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    parts, depth, cur = [], 0, ""
    for ch in annotation:
        depth += (ch == "[") - (ch == "]")
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out: list[str] = []
    for part in parts:
        kind = _YAML_KINDS.get(part.split("[")[0].strip().removeprefix("typing."))
        if kind and kind not in out:
            out.append(kind)
    return out


def _fits(value: object, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list | tuple)
    if kind == "null":
        return value is None
    return isinstance(value, {"bool": bool, "str": str, "dict": dict}[kind])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_values(values: dict, annotations: dict, where: str, source: str, key: str) -> None:
    """Type-check ``values`` (a mapping of a config) against ``annotations`` in place: a float
    given as a string that reads as a number is converted (YAML 1.1 reads ``1e-3`` as a string);
    floats must be finite."""
    for name, value in values.items():
        kinds = _kinds(annotations.get(name, inspect.Parameter.empty))
        if not kinds:
            continue
        top = key or name  # top level: the field itself
        path = f"{where}.{name}" if where else name
        if "float" in kinds and "str" not in kinds and isinstance(value, str):
            try:
                value = values[name] = float(value)
            except ValueError:
                pass
        if not any(_fits(value, k) for k in kinds):
            raise ConfigError(source, top, f"{path} must be {' or '.join(kinds)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(source, top, f"{path} must be a finite number, got {value!r}")


def _check_keys(values: object, valid, where: str, source: str, key: str) -> None:
    """``values`` must be a mapping whose keys are all in ``valid``."""
    if not isinstance(values, dict):
        raise ConfigError(source, key, f"{where} must be a mapping (KEY: VALUE, ...), got "
                                       f"{values!r}")
    for name in values:
        if name not in valid:
            raise ConfigError(source, key, unknown_key_message(where, name, valid))


def _need(ok: bool, source: str, key: str, path: str, rule: str, value: object) -> None:
    if not ok:
        raise ConfigError(source, key, f"{path} must be {rule}, got {value!r}")


def _check_numbers(value: object, n: int | None, source: str, key: str, path: str) -> list:
    """``value`` is a list of finite numbers (of length ``n`` if given)."""
    ok = isinstance(value, list | tuple) and all(_is_number(v) for v in value) \
        and (n is None or len(value) == n)
    _need(ok, source, key, path, f"a list of {n or 'some'} numbers" if n else "a list of numbers",
          value)
    return list(value)  # type: ignore[arg-type]


#: Range rules of the top-level numbers: ``(key, test, rule in words)``.
_RANGES = (
    ("val_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("input_size", lambda v: MIN_INPUT_SIZE <= v <= MAX_INPUT_SIZE,
     f"in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] pixels"),
    ("enlarge", lambda v: 0 < v <= MAX_ENLARGE, f"in (0, {MAX_ENLARGE:g}]"),
    ("epochs", lambda v: v >= 1, ">= 1"),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("lr", lambda v: v >= 0, ">= 0"),
    ("weight_decay", lambda v: v >= 0, ">= 0"),
    ("warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("warmup_steps", lambda v: v >= 0, ">= 0"),
    ("num_workers", lambda v: v >= 0, ">= 0"),
    ("threads", lambda v: v >= 1, ">= 1"),
    ("max_time_minutes", lambda v: v >= 0, ">= 0 (0 = no limit)"),
    ("limit_train_batches", lambda v: v > 0 and (isinstance(v, int) or v <= 1),
     "a fraction in (0, 1] or a whole number of batches >= 1"),
    ("max_images", lambda v: v >= 0, ">= 0 (0 = all)"),
    ("seed", lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    ("num_nodes", lambda v: v >= 1, ">= 1"),
)


def _lightning_names() -> tuple[set[str], set[str], set[str]] | None:
    """Lightning's accelerator, strategy and precision names (``None`` if it cannot say)."""
    try:
        from typing import get_args

        from lightning_fabric.connector import _PRECISION_INPUT
        from pytorch_lightning.accelerators import AcceleratorRegistry
        from pytorch_lightning.strategies import StrategyRegistry

        precisions = {str(a) for t in get_args(_PRECISION_INPUT) for a in get_args(t)}
        return ({"auto", "gpu", *AcceleratorRegistry.available_accelerators()},
                {"auto", *StrategyRegistry.available_strategies()}, precisions)
    except Exception:  # noqa: BLE001  (a Lightning without these names: Trainer() checks)
        return None


def _check_model_args(cfg: TrainConfig, source: str) -> None:
    args = cfg.model_args
    params = model_parameters(cfg.model)
    if params is None:  # a factory whose arguments cannot be read: the model checks them
        _check_keys(args, args, "model_args", source, "model_args")
        return
    valid = {k for k in params if k not in RUN_ARGS}
    for name, by in (("input_size", "the top-level key input_size"),
                     ("num_points", "the scheme (key scheme)")):
        if isinstance(args, dict) and name in args:
            raise ConfigError(source, "model_args", f"model_args.{name} cannot be set in "
                              f"model_args: {by} sets it")
    _check_keys(args, valid, f"model_args of model {cfg.model!r}", source, "model_args")
    _check_values(args, {k: p.annotation for k, p in params.items()}, "model_args", source,
                  "model_args")
    for name, value in args.items():
        if "CodecConfig" not in str(params[name].annotation) or value is None:
            continue
        from faceland.codecs import CodecConfig

        where = f"model_args.{name}"
        if isinstance(value, dict):
            codec_fields = {f.name: f.type for f in dataclasses.fields(CodecConfig)}
            _check_keys(value, codec_fields, where, source, "model_args")
            _check_values(value, codec_fields, where, source, "model_args")
        sigma = args.get("sigma", params["sigma"].default if "sigma" in params else 1.0)
        try:
            CodecConfig.coerce(value, sigma=sigma if _is_number(sigma) else 1.0)
        except (TypeError, ValueError) as e:
            raise ConfigError(source, "model_args", f"{where}: {e}") from None


def check_config(cfg: TrainConfig, source: str) -> None:
    """Check every value of ``cfg``, nested mappings (``model_args`` and its ``codec``,
    ``augment``, ``mtfl``) included: unknown keys, types (from the dataclass fields and the
    model factory's signature) and ranges. The same checks run on a YAML file and on
    ``--set`` overrides.

    A float given as a string that reads as a number is converted in place: YAML 1.1 (PyYAML)
    reads ``1e-3`` (no dot) as the string ``"1e-3"``.

    Raises:
        ConfigError: the first problem, in one line naming ``source`` and the key.
    """
    fields_ = dataclasses.fields(TrainConfig)
    values = {f.name: getattr(cfg, f.name) for f in fields_}
    _check_values(values, {f.name: f.type for f in fields_}, "", source, "")
    for f in fields_:
        setattr(cfg, f.name, values[f.name])
    for key, test, rule in _RANGES:
        _need(test(getattr(cfg, key)), source, key, key, rule, getattr(cfg, key))
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                         ("milestone_unit", MILESTONE_UNITS)):
        _need(getattr(cfg, key) in choices, source, key, key, f"one of {', '.join(choices)}",
              getattr(cfg, key))
    _check_schedule(cfg, source)
    _check_names(cfg, source)
    _check_model_args(cfg, source)
    _check_augment(cfg.augment, source)
    _check_mtfl(cfg.mtfl, source)


def _check_schedule(cfg: TrainConfig, source: str) -> None:
    """Milestones and gamma of the learning-rate schedule (see :func:`check_config`)."""
    top = 1 if cfg.milestone_unit == "fraction" else math.inf
    for m in _check_numbers(cfg.milestones, None, source, "milestones", "milestones"):
        _need(0 <= m <= top, source, "milestones", "milestones",
              "in [0, 1] (milestone_unit: fraction)" if top == 1 else "numbers >= 0",
              cfg.milestones)
    gammas = cfg.gamma if isinstance(cfg.gamma, list) else [cfg.gamma]
    _check_numbers(gammas, None, source, "gamma", "gamma")
    _need(all(g > 0 for g in gammas), source, "gamma", "gamma", "> 0", cfg.gamma)
    if isinstance(cfg.gamma, list) and cfg.schedule == "step":
        _need(len(cfg.gamma) == len(cfg.milestones), source, "gamma", "gamma",
              f"one factor per milestone ({len(cfg.milestones)})", cfg.gamma)


def _check_names(cfg: TrainConfig, source: str) -> None:
    """Devices, Lightning names, model, dataset, scheme and ``init_from`` (see
    :func:`check_config`)."""
    d = cfg.devices
    _need(isinstance(d, str) or d >= 1 or d == -1, source, "devices", "devices",
          "'auto', a count >= 1 or -1 (all)", d)
    names = _lightning_names()
    if names is not None:
        for key, known in zip(("accelerator", "strategy", "precision"), names, strict=True):
            _need(getattr(cfg, key) in known, source, key, key,
                  f"one of {', '.join(sorted(known))}", getattr(cfg, key))
    if cfg.model not in list_models():
        raise ConfigError(source, "model", f"model: unknown model {cfg.model!r}; registered: "
                                           f"{', '.join(list_models())}")
    if cfg.dataset not in DATASETS:
        raise ConfigError(source, "dataset", f"dataset: unknown dataset {cfg.dataset!r}; known: "
                                             f"{', '.join(DATASETS)}")
    try:
        get_scheme(cfg.scheme)
    except UnknownNameError as e:
        raise ConfigError(source, "scheme", f"scheme: {e}") from None
    if cfg.init_from:
        try:
            resolve_weights(cfg.init_from)
        except FileNotFoundError as e:
            raise ConfigError(source, "init_from", f"init_from: {e}") from None


def _check_augment(aug: dict, source: str) -> None:
    """The ``augment`` mapping: keys, types and ranges (see :func:`check_config`)."""
    aug_fields = {f.name: f.type for f in dataclasses.fields(AugmentConfig)}
    _check_keys(aug, aug_fields, "augment", source, "augment")
    _check_values(aug, aug_fields, "augment", source, "augment")
    for name in AUGMENT_PROBABILITIES:
        if name in aug:
            _need(0 <= aug[name] <= 1, source, "augment", f"augment.{name}",
                  "a probability in [0, 1]", aug[name])
    if "rotation" in aug:
        _need(0 <= aug["rotation"] <= 180, source, "augment", "augment.rotation",
              "in [0, 180] degrees", aug["rotation"])
    if "shift" in aug:
        _need(0 <= aug["shift"] < 1, source, "augment", "augment.shift",
              "in [0, 1) (a fraction of the crop side)", aug["shift"])
    if "scale" in aug:
        lo, hi = _check_numbers(aug["scale"], 2, source, "augment", "augment.scale")
        _need(0 < lo <= hi, source, "augment", "augment.scale", "[min, max] with 0 < min <= max",
              aug["scale"])
    if "jitter" in aug:
        j = _check_numbers(aug["jitter"], 4, source, "augment", "augment.jitter")
        _need(min(j) >= 0 and j[3] <= 0.5, source, "augment", "augment.jitter",
              "[brightness, contrast, saturation, hue] >= 0 with hue <= 0.5", aug["jitter"])
    if "flip_x_offset" in aug:
        _need(abs(aug["flip_x_offset"]) < 0.5, source, "augment", "augment.flip_x_offset",
              "in (-0.5, 0.5) (a fraction of the crop side)", aug["flip_x_offset"])


def _check_mtfl(mtfl: dict, source: str) -> None:
    """The ``mtfl`` mapping: keys, types and ranges (see :func:`check_config`)."""
    mtfl_fields = {f.name: f.type for f in dataclasses.fields(MtflConfig)}
    _check_keys(mtfl, mtfl_fields, "mtfl", source, "mtfl")
    _check_values(mtfl, mtfl_fields, "mtfl", source, "mtfl")
    for name, test, rule in (("pseudo_weight", lambda v: v >= 0, ">= 0"),
                             ("five_weight", lambda v: v >= 0, ">= 0"),
                             ("max_err5", lambda v: v > 0, "> 0"),
                             ("max_images", lambda v: v >= 0, ">= 0 (0 = all)")):
        if name in mtfl:
            _need(test(mtfl[name]), source, "mtfl", f"mtfl.{name}", rule, mtfl[name])


def read_last_checkpoint(path: str | Path) -> dict:
    """A run's ``last.ckpt``, loaded safely (tensors and plain containers only, memory-mapped).

    Raises:
        faceland.errors.FormatError: the file is unreadable (truncated, corrupt, not a
            training checkpoint); the message names it and says how to start over.
    """
    p = Path(path)
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  (torch raises many types; none of its text is shown)
        ck = None
    if not isinstance(ck, dict) or not isinstance(ck.get("epoch"), int) \
            or not isinstance(ck.get("state_dict"), dict):
        raise FormatError(f"{p}: unreadable training checkpoint (truncated, corrupt or not "
                          "written by faceland train); move it away or delete it to start the "
                          "run over from epoch 0")
    return ck


def check_out_dir(cfg: TrainConfig) -> Path:
    """Check, before any data is read, that ``cfg.out_dir`` can hold the run (creating it).

    Raises:
        ValueError: it is a file, lies under a file, or cannot be written; one line naming it.
    """
    out = Path(cfg.out_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == out else f"lies under {p}, a file"
            raise ValueError(f"out_dir {out}: {where}, not a folder for the run")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".faceland-", suffix=".check")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ValueError(f"out_dir {out}: cannot be written ({e.strerror or e})") from None
    return out


def finished_run_message(cfg: TrainConfig) -> str | None:
    """What to say instead of training when the run in ``cfg.out_dir`` has already done
    ``cfg.epochs`` (or more) epochs and exported its model; ``None`` when there is work to do
    (train, resume, or export a finished run whose export was interrupted).

    Raises:
        faceland.errors.FormatError: an unreadable ``last.ckpt``.
        ValueError: the run has done more epochs than ``cfg.epochs`` and exported nothing.
    """
    out = Path(cfg.out_dir)
    last = out / "checkpoints" / "last.ckpt"
    if not last.exists():
        return None
    done = read_last_checkpoint(last)["epoch"] + 1
    if done < cfg.epochs:
        return None
    model = out / "model.safetensors"
    if not model.exists():
        if done > cfg.epochs:
            raise ValueError(f"{last}: the run already finished {done} epochs, more than epochs: "
                             f"{cfg.epochs}; set epochs to {done} to export its model, or raise "
                             "it to continue training")
        return None  # finished but not exported: the export runs
    if done == cfg.epochs:
        return (f"{out}: run already finished {done} of {cfg.epochs} epochs; nothing to do - "
                f"raise epochs to continue (model: {model})")
    return (f"{out}: run already finished {done} epochs, more than epochs: {cfg.epochs}; "
            f"nothing to do - raise epochs above {done} to continue (model: {model})")


def _check_resumable(ck: dict, module: LandmarkModule, last: Path) -> None:
    """The checkpoint to resume from must hold this config's model (names and shapes)."""
    mine = module.state_dict()
    theirs = ck["state_dict"]
    problem = None
    for k, v in mine.items():
        if k not in theirs:
            problem = f"no {k}"
        elif getattr(theirs[k], "shape", None) != v.shape:
            problem = f"{k} is {tuple(theirs[k].shape)}, the config makes {tuple(v.shape)}"
        if problem:
            break
    extra = sorted(set(theirs) - set(mine))
    if problem is None and extra:
        problem = f"{extra[0]} is not in the config's model"
    if problem:
        raise ValueError(f"{last}: written by a run with another model than the config describes "
                         f"({problem}); use a new out_dir, or move {last.parent} away to start "
                         "over")


def _best_checkpoint(best_path: str, ckpt_dir: Path, last: Path) -> Path:
    """The best checkpoint to export: Lightning's record of it, else (a run resumed from a
    checkpoint written before that record was kept up to date) the ``best-*.ckpt`` with the
    lowest validation NME in its name, else ``last.ckpt``."""
    if best_path and Path(best_path).exists():
        return Path(best_path)
    scored = []
    for p in ckpt_dir.glob("best-*.ckpt"):
        m = re.search(r"val_nme=([0-9.]+)\.ckpt$", p.name)
        if m:
            scored.append((float(m.group(1)), p.name, p))
    if best_path or scored:
        log.warning("best checkpoint %s is missing; exporting %s", best_path or "(none)",
                    min(scored)[2] if scored else last)
    return min(scored)[2] if scored else last


def _crop_datasets(cfg: TrainConfig, scheme: LandmarkScheme
                   ) -> tuple[torch.utils.data.Dataset, CropDataset, dict[str, int]]:
    """``(training crops, validation crops, face counts)``: the training split augmented
    (plus the MTFL pseudo-labelled faces when ``cfg.mtfl``), the validation split plain."""
    train_recs, val_recs = train_val_records(cfg)
    log.info("train %d / val %d faces", len(train_recs), len(val_recs))
    aug = TrainAugment(AugmentConfig(**cfg.augment), seed=cfg.seed)
    ds_train = CropDataset(train_recs, scheme, cfg.input_size, cfg.enlarge, aug)
    counts = {"n_train": len(train_recs), "n_val": len(val_recs), "n_mtfl": 0}
    if cfg.mtfl:
        if cfg.model not in ("integral", "regression"):
            raise ValueError(f"mtfl needs a coordinate model (integral, regression), not {cfg.model}")
        mtfl = mtfl_records(MtflConfig(**cfg.mtfl))
        counts["n_mtfl"] = len(mtfl)
        log.info("MTFL: %d pseudo-labelled faces", len(mtfl))
        ds_train = torch.utils.data.ConcatDataset(
            [ds_train, CropDataset(mtfl, scheme, cfg.input_size, cfg.enlarge, aug)])
    return ds_train, CropDataset(val_recs, scheme, cfg.input_size, cfg.enlarge, None), counts


def _build_model(cfg: TrainConfig, scheme: LandmarkScheme) -> tuple[LandmarkModel, dict | None]:
    """The configured model (channels-last, initialised from ``cfg.init_from`` if set) and
    what :func:`init_weights` reports; a value the architecture rejects is one ``ValueError``."""
    try:
        model = create_model(cfg.model, num_points=scheme.num_points, input_size=cfg.input_size,
                             **cfg.model_args)
    except Exception as e:  # noqa: BLE001  (a value the architecture rejects, in one line)
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"model {cfg.model!r} cannot be built with input_size {cfg.input_size} "
                         f"and model_args {cfg.model_args}: {text}") from None
    init_info = init_weights(model, cfg.init_from) if cfg.init_from else None
    return model.to(memory_format=torch.channels_last), init_info  # faster CPU convolutions


def _make_trainer(cfg: TrainConfig, out: Path, callbacks: list) -> pl.Trainer:
    """The Lightning trainer of a run; a bad accelerator / devices / strategy / precision
    combination is one ``ValueError`` naming them."""
    try:
        return pl.Trainer(
            max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
            num_nodes=cfg.num_nodes, strategy=cfg.strategy, default_root_dir=str(out),
            callbacks=callbacks, logger=pl.loggers.CSVLogger(str(out), name="logs"),
            limit_train_batches=cfg.limit_train_batches, log_every_n_steps=10,
            precision=cfg.precision, use_distributed_sampler=False,  # EpochSampler shards itself
            enable_progress_bar=True,
        )
    except (ValueError, TypeError, MisconfigurationException) as e:
        raise ValueError(f"accelerator {cfg.accelerator!r}, devices {cfg.devices!r}, strategy "
                         f"{cfg.strategy!r}, num_nodes {cfg.num_nodes}, precision "
                         f"{cfg.precision!r}: {str(e).splitlines()[0]}") from None


def _loaders(cfg: TrainConfig, trainer: pl.Trainer, ds_train: torch.utils.data.Dataset,
             ds_val: CropDataset, first_epoch: int) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders. Every rank sees the whole validation split (identical
    NME on every rank, so model selection agrees) and its own share of each epoch's training
    order, which starts at ``first_epoch`` on a resume."""
    per_rank = len(ds_train) // trainer.world_size
    if per_rank < cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is more than the {per_rank} training faces "
                         f"{'per rank ' if trainer.world_size > 1 else ''}(an epoch would have no "
                         "step); lower batch_size or use more images")
    persistent = cfg.num_workers > 0
    sampler = EpochSampler(len(ds_train), cfg.seed, first_epoch, trainer.global_rank,
                           trainer.world_size)
    dl_train = DataLoader(EpochIndexed(ds_train, _train_augment(ds_train)), cfg.batch_size,
                          sampler=sampler, drop_last=True, num_workers=cfg.num_workers,
                          persistent_workers=persistent)
    dl_val = DataLoader(ds_val, 64, num_workers=cfg.num_workers, persistent_workers=persistent)
    return dl_train, dl_val


def _fit(trainer: pl.Trainer, module: LandmarkModule, loaders: tuple[DataLoader, DataLoader],
         last: Path) -> float:
    """``trainer.fit`` (resuming from ``last`` when it exists); returns the wall seconds.

    Raises:
        TrainingInterrupted: Ctrl-C or SIGTERM (Lightning's ``sys.exit``), with the epochs done.
    """
    t0 = time.time()
    try:
        trainer.fit(module, *loaders, ckpt_path=str(last) if last.exists() else None)
    except SystemExit:  # Lightning's answer to Ctrl-C (sys.exit(1)) and to SIGTERM
        if trainer.state.status != pl.trainer.states.TrainerStatus.INTERRUPTED:
            raise
        raise TrainingInterrupted(trainer.fit_loop.epoch_progress.current.completed,
                                  last if last.exists() else None) from None
    return time.time() - t0


def _load_best(model: LandmarkModel, best: Path) -> None:
    """Load the best checkpoint's weights into ``model`` (a corrupt file: one FormatError)."""
    try:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    except Exception:  # noqa: BLE001  (torch raises many types; none of its text is shown)
        raise FormatError(f"{best}: unreadable checkpoint (truncated or corrupt); move it away "
                          "and run the same command again to export another") from None
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})


def train(cfg: TrainConfig, command: str | None = None) -> Path:
    """Run (or resume) a training run; returns the exported ``model.safetensors`` path.

    ``command`` (the command line that started the run, if any) is recorded in the model card's
    ``training`` block beside the resolved config, epochs done, wall time and hardware.
    """
    check_config(cfg, f"config of {cfg.out_dir}")
    check_out_dir(cfg)
    message = finished_run_message(cfg)
    if message is not None:
        log.warning(message)
        return Path(cfg.out_dir) / "model.safetensors"
    pl.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(cfg.threads)
    scheme = get_scheme(cfg.scheme)
    ds_train, ds_val, counts = _crop_datasets(cfg, scheme)
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    # last.ckpt is written at the end of every epoch: a resume starts at the epoch after it.
    resume = read_last_checkpoint(last) if last.exists() else None
    first = resume["epoch"] + 1 if resume is not None else 0
    model, init_info = _build_model(cfg, scheme)
    module = LandmarkModule(model, cfg)
    if resume is not None:
        _check_resumable(resume, module, last)
        del resume
    best_cb = pl.callbacks.ModelCheckpoint(ckpt_dir, "best-{epoch:03d}-{val_nme:.3f}",
                                           monitor="val_nme", mode="min", save_top_k=1)
    # Our own Timer (Lightning's max_time makes the same one) so that the training wall time is
    # recorded, across resumes, also for runs without a time budget.
    timer = pl.callbacks.Timer({"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None)
    agree = WeightsAgree()
    # EpochCheckpoint after best_cb: last.ckpt holds this epoch's best-model record
    trainer = _make_trainer(cfg, out, [best_cb, EpochCheckpoint(last), timer,
                                       pl.callbacks.LearningRateMonitor(), agree])
    wall = _fit(trainer, module, _loaders(cfg, trainer, ds_train, ds_val, first), last)
    if not trainer.is_global_zero:  # rank 0 exports
        return out / "model.safetensors"
    best = _best_checkpoint(best_cb.best_model_path, ckpt_dir, last)
    _load_best(model, best)
    card = ModelCard(
        config=model.config, scheme=cfg.scheme, input_size=cfg.input_size, enlarge=cfg.enlarge,
        box_source="gt (tight landmark box, square, enlarged)",
        training={
            **dataclasses.asdict(cfg), **counts, "init": init_info, "best_checkpoint": best.name,
            "best_val_nme_iod_percent": float(best_cb.best_model_score)
            if best_cb.best_model_score is not None else None,
            "epochs_done": trainer.current_epoch,
            "wall_minutes_this_invocation": round(wall / 60, 1),
            "train_wall_minutes_total": round(module._elapsed_minutes(), 2),
            "hardware": f"{platform.processor() or platform.machine()}, "
                        f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
            "command": command,
            "world_size": trainer.world_size,
            "ddp_weight_checksums": agree.checksums,
        })
    return save_model(model.eval(), out / "model", card)
