"""Training with PyTorch Lightning: typed YAML configs, checkpoints, resume, progress, logs.

``faceland train CONFIG`` reads a YAML file into :class:`TrainConfig` (unknown keys are an error),
trains on a training split with model selection on a validation split carved out of it, writes
Lightning checkpoints to ``out_dir/checkpoints`` (``last.ckpt`` every epoch: a killed run resumes
from it when started again with the same command) and finally exports the best checkpoint as
``out_dir/model.safetensors`` + ``model.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader

from faceland.checkpoint import save_model
from faceland.data.crops import CropDataset
from faceland.data.datasets import DATASETS, FaceRecord, load_dataset, load_mtfl, split_train_val
from faceland.losses import weighted_l1_loss
from faceland.metrics import nme
from faceland.models import LandmarkModel, create_model
from faceland.schemes import five_point_matrix, get_scheme
from faceland.transforms import AugmentConfig, TrainAugment

__all__ = ["TrainConfig", "LandmarkModule", "load_config", "check_config", "train"]

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
        ValueError: unknown keys (typos fail loudly) or a value of the wrong type.
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
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{p}: unknown config keys {unknown}; known: {sorted(known)}")
    aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
    bad_aug = sorted(set(raw.get("augment", {})) - aug_known)
    if bad_aug:
        raise ValueError(f"{p}: unknown augment keys {bad_aug}; known: {sorted(aug_known)}")
    bad_mtfl = sorted(set(raw.get("mtfl") or {}) - {f.name for f in dataclasses.fields(MtflConfig)})
    if bad_mtfl:
        raise ValueError(f"{p}: unknown mtfl keys {bad_mtfl}")
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
        params = self.model.parameters()
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(params, cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(params, cfg.lr, weight_decay=cfg.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
        steps = max(1, self.trainer.estimated_stepping_batches)
        per_epoch = max(1, steps // max(1, cfg.epochs))
        warm = cfg.warmup_steps or cfg.warmup_epochs * per_epoch
        if cfg.schedule == "cosine":
            def f(s: int) -> float:
                if s < warm:
                    return (s + 1) / warm
                progress = (s - warm) / max(1, steps - warm)
                if cfg.max_time_minutes:  # anneal by the wall-time budget if it ends first
                    progress = max(progress, self._elapsed_minutes() / cfg.max_time_minutes)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        elif cfg.schedule == "step":
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
        else:
            raise ValueError(f"unknown schedule {cfg.schedule!r}")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _train_augment(ds) -> TrainAugment | None:
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


def _train_augment(ds) -> TrainAugment | None:
    if isinstance(ds, torch.utils.data.ConcatDataset):  # the parts share one augmenter
        ds = ds.datasets[0]
    return getattr(ds, "augment", None)


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT / SIGTERM; the same command resumes from ``checkpoint``."""

    def __init__(self, epochs_done: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted after {epochs_done} finished epoch(s)")
        self.epochs_done, self.checkpoint = epochs_done, checkpoint


class EpochCheckpoint(pl.Callback):
    """``last.ckpt`` at the end of **every** epoch (written atomically), whether or not the
    validation NME improved; on SIGINT / SIGTERM also ``interrupted.ckpt`` (the mid-epoch state,
    for inspection: a resume starts from ``last.ckpt``, the end of the last finished epoch,
    because a shuffled epoch cannot be resumed half-way reproducibly)."""

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


def check_config(cfg: TrainConfig, source: str) -> None:
    """Raise ValueError when a config value's type differs from its field's default type.

    A float field given as a string that reads as a number is converted in place: YAML 1.1
    (PyYAML) reads ``1e-3`` (no dot) as the string ``"1e-3"``.
    """
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        want, got = type(getattr(defaults, f.name)), getattr(cfg, f.name)
        if want is float and isinstance(got, str):
            try:
                got = float(got)
                setattr(cfg, f.name, got)
            except ValueError:
                pass
        ok = isinstance(got, want) or (want is float and isinstance(got, int)
                                       and not isinstance(got, bool))
        ok = ok or (f.name == "gamma" and isinstance(got, list))  # one factor per milestone
        ok = ok or (f.name == "devices" and isinstance(got, int) and not isinstance(got, bool))
        if not ok:
            raise ValueError(f"{source}: {f.name} must be {want.__name__}, got {got!r}")


def train(cfg: TrainConfig, command: str | None = None) -> Path:
    """Run (or resume) a training run; returns the exported ``model.safetensors`` path.

    ``command`` (the command line that started the run, if any) is recorded in the model card's
    ``training`` block beside the resolved config, epochs done, wall time and hardware.
    """
    pl.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(cfg.threads)
    scheme = get_scheme(cfg.scheme)
    train_recs, val_recs = train_val_records(cfg)
    log.info("train %d / val %d faces", len(train_recs), len(val_recs))
    aug = TrainAugment(AugmentConfig(**cfg.augment), seed=cfg.seed)
    ds_train = CropDataset(train_recs, scheme, cfg.input_size, cfg.enlarge, aug)
    n_mtfl = 0
    if cfg.mtfl:
        if cfg.model not in ("integral", "regression"):
            raise ValueError(f"mtfl needs a coordinate model (integral, regression), not {cfg.model}")
        mtfl = mtfl_records(MtflConfig(**cfg.mtfl))
        n_mtfl = len(mtfl)
        log.info("MTFL: %d pseudo-labelled faces", n_mtfl)
        ds_train = torch.utils.data.ConcatDataset(
            [ds_train, CropDataset(mtfl, scheme, cfg.input_size, cfg.enlarge, aug)])
    ds_val = CropDataset(val_recs, scheme, cfg.input_size, cfg.enlarge, None)
    persistent = cfg.num_workers > 0
    out = Path(cfg.out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    # last.ckpt is written at the end of every epoch: a resume starts at the epoch after it.
    first = torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1 \
        if last.exists() else 0
    model = create_model(cfg.model, num_points=scheme.num_points, input_size=cfg.input_size,
                         **cfg.model_args)
    init_info = init_weights(model, cfg.init_from) if cfg.init_from else None
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU
    module = LandmarkModule(model, cfg)
    best_cb = pl.callbacks.ModelCheckpoint(ckpt_dir, "best-{epoch:03d}-{val_nme:.3f}",
                                           monitor="val_nme", mode="min", save_top_k=1)
    # Our own Timer (Lightning's max_time makes the same one) so that the training wall time is
    # recorded, across resumes, also for runs without a time budget.
    timer = pl.callbacks.Timer({"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None)
    agree = WeightsAgree()
    trainer = pl.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        default_root_dir=str(out), callbacks=[best_cb, EpochCheckpoint(last), timer,
                                            pl.callbacks.LearningRateMonitor(), agree],
        logger=pl.loggers.CSVLogger(str(out), name="logs"),
        limit_train_batches=cfg.limit_train_batches, log_every_n_steps=10,
        precision=cfg.precision, use_distributed_sampler=False,  # EpochSampler shards itself
        enable_progress_bar=True,
    )
    # Every rank sees the whole validation split (identical NME on every rank, so model
    # selection agrees) and its own share of each epoch's training order.
    sampler = EpochSampler(len(ds_train), cfg.seed, first, trainer.global_rank,
                           trainer.world_size)
    dl_train = DataLoader(EpochIndexed(ds_train, _train_augment(ds_train)), cfg.batch_size,
                          sampler=sampler, drop_last=True, num_workers=cfg.num_workers,
                          persistent_workers=persistent)
    dl_val = DataLoader(ds_val, 64, num_workers=cfg.num_workers, persistent_workers=persistent)
    t0 = time.time()
    try:
        trainer.fit(module, dl_train, dl_val, ckpt_path=str(last) if last.exists() else None)
    except SystemExit:  # Lightning's answer to Ctrl-C (sys.exit(1)) and to SIGTERM
        if trainer.state.status != pl.trainer.states.TrainerStatus.INTERRUPTED:
            raise
        raise TrainingInterrupted(trainer.fit_loop.epoch_progress.current.completed,
                                  last if last.exists() else None) from None
    wall = time.time() - t0
    if not trainer.is_global_zero:  # rank 0 exports
        return out / "model.safetensors"
    best = best_cb.best_model_path or str(last)
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    card = {
        "scheme": cfg.scheme,
        "input_size": cfg.input_size,
        "enlarge": cfg.enlarge,
        "box_source": "gt (tight landmark box, square, enlarged)",
        "training": {
            **dataclasses.asdict(cfg),
            "n_train": len(train_recs), "n_val": len(val_recs), "n_mtfl": n_mtfl,
            "init": init_info,
            "best_checkpoint": Path(best).name,
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
        },
    }
    return save_model(model.eval(), out / "model", card)
