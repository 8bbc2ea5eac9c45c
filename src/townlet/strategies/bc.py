"""Behaviour cloning: supervised imitation of the scripted teacher, with a result that lasts.

Fixes over the original: validation is a held-out set of whole agent trajectories (never rows of
the training set); metrics lines carry epoch means, the result the train loss and accuracy of
the checkpoint it names; the trained network is checkpointed (``last.pt`` every epoch, ``best.pt``
on the best validation score), can warm-start or resume, and acts in the town for the
``evaluation`` block. Data is stacked once into device tensors and each
epoch draws one ``randperm`` from (seed, epoch), so a resumed run replays exactly the same batches.

Torch is imported only inside functions (the module itself stays importable without torch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from townlet.strategies.base import StrategyBase, dataset_label, evaluate_trained

if TYPE_CHECKING:
    import torch

    from townlet.dto import BCTrainingResultDTO
    from townlet.replay import ReplayData
    from townlet.strategies.context import TrainingContext

TARGETS = ("teacher_actions", "actions")
LOSS_TIE_BREAK = 1e-3  # at equal val accuracy, a val loss lower by this fraction still counts as progress


class BCConfigError(ValueError):
    """A BC hyper-parameter outside its valid range."""


class BCTensors(NamedTuple):
    """One split, stacked once as device tensors (maps stay uint8 to save memory and bandwidth)."""

    maps: torch.Tensor
    features: torch.Tensor
    mask: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.targets.shape[0])


class ValueTargets(NamedTuple):
    """Returns-to-go of one split as ``base + discount * V_after_cut`` (flat rows, device tensors).

    ``recorded`` holds the dataset's own value after each row's cut when it recorded a critic's
    values; otherwise (``None``: a scripted capture records 0) the cut rows ``cut_rows`` are
    re-valued by the network being trained, once per epoch, so a truncated episode is not treated as
    if its future were worth nothing.
    """

    base: torch.Tensor  # f32 [M]
    discount: torch.Tensor  # f32 [M]
    cut_index: torch.Tensor  # i64 [M], flat row of each row's cut
    cut_rows: torch.Tensor  # i64 [K], the distinct cut rows
    recorded: torch.Tensor | None  # f32 [M], recorded value after the cut (None: use the critic)


@dataclass
class EpochStats:
    """Per-epoch numbers, turned into one metrics line."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    per_action_accuracy: dict[str, float | None]
    confusion: list[list[int]] | None
    samples_per_sec: float
    train_seconds: float
    epoch_seconds: float
    train_value_loss: float | None = None
    val_value_loss: float | None = None
    value_explained_variance: float | None = None


def value_targets(data: ReplayData, gamma: float, device: str) -> ValueTargets:
    """Regression targets for the value head from the split's rewards and episode ends.

    Rows are flattened as ``data.flat`` does (t-major), so they line up with :func:`stack_tensors`.
    """
    import torch

    from townlet.algorithms.returns import cut_bootstrap_values, returns_to_go_parts

    parts = returns_to_go_parts(data.rewards, data.terminated, data.truncated, gamma)
    n = data.num_agents
    cut_index = (parts.cut_row * n + np.arange(n)[None, :]).reshape(-1)
    recorded = None
    if np.any(data.final_values[data.truncated] != 0) or np.any(data.bootstrap_values != 0):
        after = cut_bootstrap_values(data.truncated, data.final_values, data.bootstrap_values).reshape(-1)
        recorded = torch.from_numpy(after[cut_index].astype(np.float32)).to(device)
    return ValueTargets(
        base=torch.from_numpy(parts.base.reshape(-1).astype(np.float32)).to(device),
        discount=torch.from_numpy(parts.discount.reshape(-1).astype(np.float32)).to(device),
        cut_index=torch.from_numpy(cut_index).to(device),
        cut_rows=torch.from_numpy(np.flatnonzero(parts.is_cut.reshape(-1))).to(device),
        recorded=recorded,
    )


def current_returns(net: torch.nn.Module, data: BCTensors, vt: ValueTargets) -> torch.Tensor:
    """Returns [M] with the cuts bootstrapped from ``vt.recorded`` or the network's current critic.

    Without recorded values, V(s_cut) stands in for V(the observation after the cut), the same
    one-step-stale fallback PPO's GAE uses for replay data; only the K cut rows are evaluated.
    """
    import torch

    if vt.recorded is not None:
        return vt.base + vt.discount * vt.recorded
    after = torch.zeros_like(vt.base)
    if vt.cut_rows.numel():
        was_training = net.training
        net.eval()
        with torch.no_grad():
            idx = vt.cut_rows
            _, v = net(data.maps[idx], data.features[idx], data.mask[idx])
            after[idx] = v.float()
        net.train(was_training)
    return vt.base + vt.discount * after[vt.cut_index]


def init_value_bias(net: torch.nn.Module, vt: ValueTargets) -> None:
    """Start the value head at the mean return instead of 0.

    The returns sit far from a fresh head's output (about -3 on the default data), and that first
    error is what the value loss would otherwise spend its early, largest gradients on -- through
    the shared trunk, at the imitation's expense. With cuts bootstrapped from the head itself, the
    mean return m solves m = mean(base) + mean(discount) * m.
    """
    import torch

    head = getattr(net, "value_head", None)
    bias = getattr(head, "bias", None)
    if bias is None:
        return
    if vt.recorded is not None:
        mean = (vt.base + vt.discount * vt.recorded).mean()
    else:
        mean = vt.base.mean() / (1.0 - vt.discount.mean()).clamp_min(1e-3)
    with torch.no_grad():
        bias.fill_(float(mean))


def stack_tensors(data: ReplayData, target: str, device: str) -> tuple[BCTensors, int]:
    """Flatten [T, N] columns to rows and move them to ``device`` once.

    Returns the tensors and the number of rows whose target the mask forbade (a world/teacher bug);
    those rows get the target allowed so one bad label cannot blow the loss up to 1e9.
    """
    import torch

    targets = np.ascontiguousarray(data.flat(target), dtype=np.int64)
    mask = np.ascontiguousarray(data.flat("action_mask"), dtype=bool)
    rows = np.arange(targets.shape[0])
    forbidden = ~mask[rows, targets]
    n_forbidden = int(forbidden.sum())
    if n_forbidden:
        mask = mask.copy()
        mask[rows[forbidden], targets[forbidden]] = True
    dev = torch.device(device)
    return (
        BCTensors(
            maps=torch.from_numpy(np.ascontiguousarray(data.flat("maps"))).to(dev),
            features=torch.from_numpy(np.ascontiguousarray(data.flat("features"), dtype=np.float32)).to(dev),
            mask=torch.from_numpy(mask).to(dev),
            targets=torch.from_numpy(targets).to(dev),
        ),
        n_forbidden,
    )


def map_channel_max(t: BCTensors) -> torch.Tensor:
    """Per-channel maximum of the training maps (the network scales each channel to [0, 1])."""
    return t.maps.amax(dim=(0, 2, 3)).float()


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """Independent permutation stream per (seed, epoch), so resume needs no generator state."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7_919 + 0xB0C) & 0x7FFF_FFFF_FFFF_FFFF)
    return gen


def train_epoch(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    data: BCTensors,
    batch_size: int,
    generator: torch.Generator,
    *,
    returns: torch.Tensor | None = None,
    value_coef: float = 0.0,
    value_loss_sum: torch.Tensor | None = None,
    value_trunk: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One shuffled pass. Returns (loss sum, correct count) as device tensors — no host sync per step.

    With ``returns`` [M] and ``value_coef > 0`` the value head is fitted as well: the loss gains
    ``value_coef * 0.5 * (V - G)^2`` (PPO's unclipped value loss), and ``value_loss_sum`` (a device
    scalar, if given) accumulates the row-weighted 0.5 * MSE in place. The cross-entropy reported
    in the loss sum stays the imitation loss alone. Unless ``value_trunk``, the value loss reaches
    only the network's ``value_head`` (the shared trunk learns from imitation alone), so the
    policy's training is exactly what it would be without the warm-up.
    """
    import torch
    import torch.nn.functional as F

    fit_value = returns is not None and value_coef > 0
    head = getattr(net, "value_head", None)
    head_params = list(head.parameters()) if fit_value and not value_trunk and head is not None else []

    n = len(data)
    perm = torch.randperm(n, generator=generator, device=data.targets.device)
    loss_sum = torch.zeros((), device=data.targets.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.targets.device)
    net.train()
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        y = data.targets[idx]
        logits, value = net(data.maps[idx], data.features[idx], data.mask[idx])
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        if fit_value:
            assert returns is not None
            loss_v = 0.5 * (value.float() - returns[idx]).pow(2).mean()
            if head_params:  # head-only: its gradient, computed apart, never reaches the trunk
                loss.backward(retain_graph=True)
                grads = torch.autograd.grad(value_coef * loss_v, head_params)
                for p, g in zip(head_params, grads, strict=True):
                    p.grad = g
            else:
                (loss + value_coef * loss_v).backward()
            if value_loss_sum is not None:
                value_loss_sum += loss_v.detach() * y.shape[0]
        else:
            loss.backward()
        opt.step()
        with torch.no_grad():
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.argmax(dim=1) == y).sum()
    return loss_sum, correct


def evaluate_values(
    net: torch.nn.Module, data: BCTensors, returns: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float | None]:
    """0.5 * MSE of the value head against ``returns`` and its explained variance (None if constant)."""
    import torch

    from townlet.algorithms.stats import explained_variance

    values = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            values.append(net(data.maps[sl], data.features[sl], data.mask[sl])[1].float())
    if not values:
        return 0.0, None
    v = torch.cat(values)
    loss, ev = torch.stack([0.5 * (v - returns).pow(2).mean(), explained_variance(v, returns)]).tolist()
    return float(loss), (float(ev) if math.isfinite(ev) else None)


def evaluate_tensors(
    net: torch.nn.Module, data: BCTensors, num_actions: int, batch_size: int = 4096
) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the [true, predicted] confusion matrix on a held-out split."""
    import torch
    import torch.nn.functional as F

    dev = data.targets.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    preds = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            logits, _ = net(data.maps[sl], data.features[sl], data.mask[sl])
            loss_sum += F.cross_entropy(logits, data.targets[sl], reduction="sum").double()
            preds.append(logits.argmax(dim=1))
    # confusion counted on the host: CUDA bincount is non-deterministic and refused in deterministic mode
    pred = torch.cat(preds).cpu().numpy() if preds else np.zeros(0, np.int64)
    truth = data.targets.cpu().numpy()
    conf = np.bincount(truth * num_actions + pred, minlength=num_actions**2).reshape(num_actions, num_actions)
    n = max(len(data), 1)
    return float(loss_sum.item()) / n, float(np.trace(conf)) / n, conf


def per_action_accuracy(confusion: np.ndarray, action_names: tuple[str, ...]) -> dict[str, float | None]:
    """Recall per true action (None where the action never occurs in the split)."""
    totals = confusion.sum(axis=1)
    return {
        name: (float(confusion[i, i] / totals[i]) if totals[i] else None)
        for i, name in enumerate(action_names)
    }


class BCStrategy(StrategyBase):
    """``strategy=bc``: fit the network to the teacher's actions, keep the best, evaluate it in the town."""

    name = "bc"
    requires_torch = True

    def __init__(
        self,
        lr: float = 3e-3,
        batch_size: int = 512,
        epochs: int = 5,
        weight_decay: float = 0.0,
        val_fraction: float = 0.125,
        early_stopping_patience: int = 2,
        min_delta: float = 0.0,
        target: str = "teacher_actions",
        eval_greedy: bool = True,
        value_coef: float = 0.5,
        gamma: float = 0.99,
        value_trunk: bool = False,
    ) -> None:
        if lr <= 0 or batch_size <= 0 or epochs <= 0 or weight_decay < 0:
            raise BCConfigError(
                f"strategy.lr, batch_size and epochs must be > 0 and weight_decay >= 0 "
                f"(got lr={lr}, batch_size={batch_size}, epochs={epochs}, weight_decay={weight_decay})"
            )
        if not 0.0 <= val_fraction < 1.0:
            raise BCConfigError(f"strategy.val_fraction must be in [0, 1), got {val_fraction}")
        if target not in TARGETS:
            raise BCConfigError(f"strategy.target must be one of {list(TARGETS)}, got {target!r}")
        if early_stopping_patience < 0:
            raise BCConfigError(
                f"strategy.early_stopping_patience must be >= 0, got {early_stopping_patience}"
            )
        if not (math.isfinite(value_coef) and value_coef >= 0):
            raise BCConfigError(f"strategy.value_coef must be >= 0 (0 = policy head only), got {value_coef}")
        if not 0.0 <= gamma <= 1.0:
            raise BCConfigError(f"strategy.gamma must be in [0, 1], got {gamma}")
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.weight_decay = float(weight_decay)
        self.val_fraction = float(val_fraction)
        self.early_stopping_patience = int(early_stopping_patience)
        self.min_delta = float(min_delta)
        self.target = target
        self.eval_greedy = bool(eval_greedy)
        self.value_coef = float(value_coef)
        self.gamma = float(gamma)
        self.value_trunk = bool(value_trunk)
        self._value_train: ValueTargets | None = None  # set per run (needs the data and device)
        self._value_val: ValueTargets | None = None

    # ------------------------------------------------------------------ the run
    def run(self, context: TrainingContext) -> BCTrainingResultDTO:
        self.ensure_torch()
        import torch

        from townlet.dto import BCTrainingResultDTO
        from townlet.nets.checkpoints import BEST, LAST, load_checkpoint, save_checkpoint, warm_start
        from townlet.nets.models import build_network
        from townlet.rollout.collect import world_config_dict
        from townlet.runs.device import resolve_device

        started = time.perf_counter()
        log = context.log
        device = resolve_device(context.device)
        data = resolve_replay(context)
        spec = data.spec
        if self.val_fraction > 0:
            train_data, val_data = data.split_by_agent(self.val_fraction, context.seed)
        else:
            train_data, val_data = data, None
        train, n_bad = stack_tensors(train_data, self.target, device)
        val = stack_tensors(val_data, self.target, device)[0] if val_data is not None else None
        if n_bad:
            log.warning("bc: %d training rows have a teacher action the mask forbids; allowed them", n_bad)
        if len(train) == 0:
            raise BCConfigError(
                "the BC training split is empty; capture more ticks or lower strategy.val_fraction"
            )

        self._value_train = self._value_val = None
        if self.value_coef > 0:
            if np.any(train_data.rewards != 0):
                self._value_train = value_targets(train_data, self.gamma, device)
                if val_data is not None:
                    self._value_val = value_targets(val_data, self.gamma, device)
            else:
                log.info("bc: the dataset's rewards are all 0; the value head is not trained (value_coef)")

        torch.manual_seed(context.seed)
        net = build_network(context.model, spec).to(device)
        net.set_input_normalisation(map_channel_max(train))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        ckpt_dir = context.run_dir.checkpoints
        config_hash = context.metadata.get("config_hash")
        ckpt_extra = {
            "world_name": getattr(context.world, "name", None),
            "world_config": world_config_dict(context.world),  # townlet-eval's default world
            "strategy": "bc",
        }

        start_epoch, best, stale, history = 0, _Best(), 0, []
        if context.init_from:
            src = warm_start(net, context.init_from, context.model, spec, device)
            log.info("bc: warm-started from %s (epoch %d)", src.path, src.epoch)
        if context.resume and (ckpt_dir / LAST).is_file():
            ckpt = load_checkpoint(ckpt_dir, spec, device, which="last")
            net.load_state_dict(ckpt.model_state)
            if ckpt.optimizer_state is not None:
                opt.load_state_dict(dict(ckpt.optimizer_state))
            ckpt.restore_rng()
            start_epoch = ckpt.epoch
            best = _Best.from_dict(ckpt.extra.get("best", {}))
            stale = int(ckpt.extra.get("stale_epochs", 0))
            log.info("bc: resuming %s after epoch %d", ckpt.path, start_epoch)

        if self._value_train is not None and not context.init_from and start_epoch == 0:
            init_value_bias(net, self._value_train)
        early_stopped = False
        stats: EpochStats | None = None
        for epoch in range(start_epoch + 1, self.epochs + 1):
            stats = self._epoch(net, opt, train, val, epoch, context.seed, spec.action_names)
            history.append(stats)
            improved = best.update(stats, self.min_delta)
            stale = 0 if improved else stale + 1
            extra = {**ckpt_extra, "best": best.to_dict(), "stale_epochs": stale}
            for name in (BEST, LAST) if improved else (LAST,):
                save_checkpoint(
                    ckpt_dir / name,
                    model=net,
                    optimizer=opt,
                    model_cfg=context.model,
                    spec=spec,
                    epoch=epoch,
                    config_hash=config_hash,
                    extra=extra,
                )
            context.metrics.log(self._metrics_record(stats, best))
            if self.early_stopping_patience and stale >= self.early_stopping_patience:
                early_stopped = True
                log.info("bc: early stop after epoch %d (no val improvement for %d epochs)", epoch, stale)
                break

        epochs_run = stats.epoch if stats is not None else start_epoch  # None: resumed a finished run
        best_path = ckpt_dir / BEST if (ckpt_dir / BEST).is_file() else ckpt_dir / LAST
        best_ckpt = load_checkpoint(best_path, spec, device)
        net.load_state_dict(best_ckpt.model_state)
        # The epoch stats are running means, each batch measured *before* its optimiser step: with
        # one batch per epoch they describe the untrained network (smoke runs reported accuracy 0.0
        # next to val accuracy 1.0). The result describes the checkpoint it names, so measure that.
        train_loss, train_accuracy, _ = evaluate_tensors(net, train, spec.num_actions)
        evaluation = evaluate_trained(context, net, spec, device, greedy=self.eval_greedy)
        model_kind = str(best_ckpt.model_cfg.get("kind"))
        rates = [h.samples_per_sec for h in history]
        return BCTrainingResultDTO(
            duration_sec=time.perf_counter() - started,
            seed=context.seed,
            device=device,
            checkpoint=str(best_path),
            init_from=str(context.init_from) if context.init_from else None,
            evaluation=evaluation,
            manifest=dataset_label(context, data, "scripted"),
            accuracy=train_accuracy,
            loss=train_loss,
            learning_rate=self.lr,
            batch_size=self.batch_size,
            epochs=self.epochs,
            val_accuracy=best.val_accuracy if val is not None else None,
            val_loss=best.val_loss if val is not None else None,
            weight_decay=self.weight_decay,
            epochs_run=epochs_run,
            best_epoch=best.epoch or None,
            early_stopped=early_stopped,
            train_samples=len(train),
            val_samples=len(val) if val is not None else 0,
            samples_per_sec=float(np.median(rates)) if rates else None,
            model=model_kind,
        )

    # ------------------------------------------------------------------ pieces
    def _epoch(
        self,
        net: torch.nn.Module,
        opt: torch.optim.Optimizer,
        train: BCTensors,
        val: BCTensors | None,
        epoch: int,
        seed: int,
        action_names: tuple[str, ...],
    ) -> EpochStats:
        import torch

        t0 = time.perf_counter()
        vt = self._value_train
        returns = current_returns(net, train, vt) if vt is not None else None
        value_sum = torch.zeros((), device=train.targets.device) if vt is not None else None
        loss_sum, correct = train_epoch(
            net,
            opt,
            train,
            self.batch_size,
            epoch_generator(seed, epoch, train.targets.device),
            returns=returns,
            value_coef=self.value_coef,
            value_loss_sum=value_sum,
            value_trunk=self.value_trunk,
        )
        train_loss, train_acc = float(loss_sum.item()) / len(train), float(correct.item()) / len(train)
        t_train = time.perf_counter() - t0
        stats = self._finish(epoch, net, train_loss, train_acc, val, action_names, len(train), t_train, t0)
        if value_sum is not None:
            stats.train_value_loss = float(value_sum.item()) / len(train)
        if val is not None and len(val) and self._value_val is not None:
            val_returns = current_returns(net, val, self._value_val)
            stats.val_value_loss, stats.value_explained_variance = evaluate_values(net, val, val_returns)
        stats.epoch_seconds = time.perf_counter() - t0
        return stats

    def _finish(
        self,
        epoch: int,
        net: torch.nn.Module,
        train_loss: float,
        train_acc: float,
        val: BCTensors | None,
        names: tuple[str, ...],
        samples: int,
        t_train: float,
        t0: float,
    ) -> EpochStats:
        val_loss = val_acc = None
        per_action: dict[str, float | None] = {}
        confusion = None
        if val is not None and len(val):
            val_loss, val_acc, conf = evaluate_tensors(net, val, len(names))
            per_action, confusion = per_action_accuracy(conf, names), conf.tolist()
        return EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_acc,
            val_loss=val_loss,
            val_accuracy=val_acc,
            per_action_accuracy=per_action,
            confusion=confusion,
            samples_per_sec=samples / t_train if t_train > 0 else 0.0,
            train_seconds=t_train,
            epoch_seconds=time.perf_counter() - t0,
        )

    def _metrics_record(self, s: EpochStats, best: _Best) -> dict[str, Any]:
        return {
            "strategy": "bc",
            "epoch": s.epoch,
            "train_loss": s.train_loss,
            "train_accuracy": s.train_accuracy,
            "val_loss": s.val_loss,
            "val_accuracy": s.val_accuracy,
            "best_epoch": best.epoch,
            "best_val_accuracy": best.val_accuracy,
            "per_action_accuracy": s.per_action_accuracy,
            "confusion_matrix": s.confusion,
            "samples_per_sec": s.samples_per_sec,
            "epoch_duration_sec": s.epoch_seconds,
            "lr": self.lr,
            "value_coef": self.value_coef if self._value_train is not None else 0.0,
            "train_value_loss": s.train_value_loss,
            "val_value_loss": s.val_value_loss,
            "value_explained_variance": s.value_explained_variance,
        }


@dataclass
class _Best:
    """Best validation score so far; survives resume.

    Accuracy first (a gain above ``min_delta``); at equal accuracy a clearly lower loss also counts,
    because on easy data accuracy saturates at 1.0 long before the network is confident.
    """

    epoch: int = 0
    val_accuracy: float | None = None
    val_loss: float | None = None

    def update(self, s: EpochStats, min_delta: float) -> bool:
        if s.val_accuracy is None:  # no validation split: the latest epoch is the best we know
            self.epoch, self.val_accuracy, self.val_loss = s.epoch, None, None
            return True
        better = (
            self.val_accuracy is None
            or s.val_accuracy > self.val_accuracy + min_delta
            or (
                math.isclose(s.val_accuracy, self.val_accuracy)
                and s.val_loss is not None
                and self.val_loss is not None
                and s.val_loss < self.val_loss * (1.0 - LOSS_TIE_BREAK)
            )
        )
        if better:
            self.epoch, self.val_accuracy, self.val_loss = s.epoch, s.val_accuracy, s.val_loss
        return better

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "val_accuracy": self.val_accuracy, "val_loss": self.val_loss}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Best:
        return cls(int(d.get("epoch", 0)), d.get("val_accuracy"), d.get("val_loss"))


def resolve_replay(context: TrainingContext) -> ReplayData:
    """The training data: the replay service builds or loads the dataset the config names."""
    service = getattr(context.services, "replay", None)
    if service is None:
        raise BCConfigError("strategy=bc needs the replay dataset service (TrainingServices.replay is None)")
    data = service.resolve(context.dataset, context.world, context.data_dir)
    if not hasattr(data, "split_by_agent"):  # a StreamingDataset: BC stacks everything on the device anyway
        context.log.info("bc: dataset.streaming=true is loaded whole (BC keeps the data as device tensors)")
        data = data.load()
    return data
