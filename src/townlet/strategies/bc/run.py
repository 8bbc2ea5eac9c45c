"""Behaviour cloning: fit the network to the scripted teacher's actions, keep the best, evaluate it
(docs/training.md). The run reads top to bottom: data, network, epochs, result. Torch is imported only
inside functions, so the strategy can be configured without torch installed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from townlet.config.plan import RunPlan
from townlet.config.schema.strategy_bc import BCStrategyConfig
from townlet.dto import BCTrainingResultDTO
from townlet.nets.checkpoints import BEST, LAST, load_checkpoint, save_checkpoint, warm_start
from townlet.nets.models import build_network
from townlet.rollout.collect import world_config_dict
from townlet.runs import interrupt
from townlet.runs.device import resolve_device
from townlet.strategies.base import StrategyBase, dataset_label, evaluate_trained
from townlet.strategies.bc.data import (
    epoch_generator,
    map_channel_max,
    resolve_replay,
    stage_splits,
    train_epoch,
)
from townlet.strategies.bc.progress import (
    EpochStats,
    Progress,
    epoch_record,
    evaluate_tensors,
    per_action_accuracy,
)
from townlet.strategies.bc.value import current_returns, evaluate_values, init_value_bias, warmup_targets

if TYPE_CHECKING:
    import torch

    from townlet.strategies.bc.data import BCTensors
    from townlet.strategies.bc.value import ValueTargets
    from townlet.strategies.context import TrainingContext


@dataclass
class BCStrategy(BCStrategyConfig, StrategyBase):
    """``strategy=bc`` (``BCStrategyConfig``'s fields): fit the teacher's actions, keep the best, evaluate."""

    name: ClassVar[str] = "bc"
    requires_torch: ClassVar[bool] = True
    # set per run (they need the data and the device), not settings
    _value_train: ValueTargets | None = field(default=None, init=False, repr=False, compare=False)
    _value_val: ValueTargets | None = field(default=None, init=False, repr=False, compare=False)

    def plan(self, world: Any) -> RunPlan:
        """At most ``epochs`` epochs (early stopping may end sooner); the world does not size BC."""
        return RunPlan(units=self.epochs, unit="epoch")

    def run(self, context: TrainingContext) -> BCTrainingResultDTO:
        self.ensure_torch()
        import torch

        started = time.perf_counter()
        log = context.log
        device = resolve_device(context.device)

        # Data: whole agents held out for validation (an agent's rows are correlated in time, so a row
        # split would leak), both splits staged on the device once.
        data = resolve_replay(context)
        spec = data.spec
        split = self.val_fraction > 0
        train_data, val_data = data.split_by_agent(self.val_fraction, context.seed) if split else (data, None)
        train, val = stage_splits(train_data, val_data, self.target, device, log)
        self._value_train, self._value_val = warmup_targets(
            train_data, val_data, self.value_coef, self.gamma, device, log
        )

        # Network: built from the seed; a warm start replaces its weights, a resume its whole state.
        torch.manual_seed(context.seed)
        net = build_network(context.model, spec).to(device)
        net.set_input_normalisation(map_channel_max(train))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        ckpt_dir = context.run_dir.checkpoints
        progress = Progress()
        if context.init_from:
            src = warm_start(net, context.init_from, context.model, spec, device)
            log.info("bc: warm-started from %s (epoch %d)", src.path, src.epoch)
        if context.resume and (ckpt_dir / LAST).is_file():
            ckpt = load_checkpoint(ckpt_dir, spec, device, which="last")
            net.load_state_dict(ckpt.model_state)
            if ckpt.optimizer_state is not None:
                opt.load_state_dict(dict(ckpt.optimizer_state))
            ckpt.restore_rng()
            progress = Progress.from_checkpoint(ckpt)
            log.info("bc: resuming %s after epoch %d", ckpt.path, progress.epoch)
        if self._value_train is not None and not context.init_from and progress.epoch == 0:
            init_value_bias(net, self._value_train)

        # Epochs: train, validate, checkpoint, log; stop once validation has stalled long enough.
        ckpt_extra = {
            "world_name": getattr(context.world, "name", None),
            "world_config": world_config_dict(context.world),  # townlet-eval's default world
            "strategy": "bc",
        }
        config_hash = context.metadata.get("config_hash")
        value_coef = self.value_coef if self._value_train is not None else 0.0
        history: list[EpochStats] = []
        early_stopped = False
        with interrupt.safe_points():  # a signal stops the run after an epoch's checkpoint and line
            for epoch in range(progress.epoch + 1, self.epochs + 1):
                stats = self._epoch(net, opt, train, val, epoch, context.seed, spec.action_names)
                history.append(stats)
                improved = progress.record(stats, self.min_delta)
                extra = {**ckpt_extra, **progress.to_extra()}
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
                context.metrics.log(epoch_record(stats, progress.best, self.lr, value_coef))
                interrupt.check(lambda: None)  # last.pt of this epoch is already written
                if context.stop.reached({}):  # the wall-clock limit (BC has no periodic evaluation)
                    break
                if self.early_stopping_patience and progress.stale >= self.early_stopping_patience:
                    early_stopped = True
                    log.info("bc: early stop after epoch %d (val stalled %d epochs)", epoch, progress.stale)
                    break

        # Result: the best checkpoint, measured again. The epoch's running means were taken before
        # each optimiser step (with one batch per epoch they describe the untrained network), and
        # the result must describe the checkpoint it names.
        best_path = ckpt_dir / BEST if (ckpt_dir / BEST).is_file() else ckpt_dir / LAST
        best_ckpt = load_checkpoint(best_path, spec, device)
        net.load_state_dict(best_ckpt.model_state)
        train_loss, train_accuracy, _ = evaluate_tensors(net, train, spec.num_actions)
        evaluation = evaluate_trained(context, net, spec, device, greedy=self.eval_greedy)
        best = progress.best
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
            epochs_run=progress.epoch,
            best_epoch=best.epoch or None,
            early_stopped=early_stopped,
            train_samples=len(train),
            val_samples=len(val) if val is not None else 0,
            samples_per_sec=float(np.median(rates)) if rates else None,
            model=str(best_ckpt.model_cfg.get("kind")),
        )

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
        """One pass over the training split (imitation, plus the value head when warming it up),
        then the held-out measures."""
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
        stats = EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_acc,
            samples_per_sec=len(train) / t_train if t_train > 0 else 0.0,
        )
        if value_sum is not None:
            stats.train_value_loss = float(value_sum.item()) / len(train)
        if val is not None and len(val):
            stats.val_loss, stats.val_accuracy, conf = evaluate_tensors(net, val, len(action_names))
            stats.per_action_accuracy = per_action_accuracy(conf, action_names)
            stats.confusion = conf.tolist()
            if self._value_val is not None:
                val_returns = current_returns(net, val, self._value_val)
                stats.val_value_loss, stats.value_explained_variance = evaluate_values(net, val, val_returns)
        stats.epoch_seconds = time.perf_counter() - t0
        return stats
