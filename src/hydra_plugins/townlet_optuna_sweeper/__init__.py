"""Hydra's Optuna sweeper with stored studies that any Optuna storage can hold, and Optuna's own plots.

``hydra.sweeper.storage`` stays a database URL (``sqlite:///study.db``) or becomes a storage node
(``_target_: optuna.storages.JournalStorage``, built here through Hydra with only Optuna's storages
allowed), so a journal file works too. The study is created with ``load_if_exists``, so a second sweep
with the same ``study_name`` and storage resumes and extends it (optuna-dashboard reads the same
storage). With no storage the study lives in memory for the sweep. After the sweep, Optuna's
optimisation-history and parameter-importance plots go to ``<sweep dir>/plots/``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class StoredOptunaSweeper(OptunaSweeper):
    def __init__(self, storage: Any | None = None, **kwargs: Any) -> None:
        import optuna

        if isinstance(storage, DictConfig):
            storage = instantiate(storage, _execution_whitelist_="optuna.storages.*")
        self.storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        self.study_name = kwargs.get("study_name")
        super().__init__(storage=self.storage, **kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        super().sweep(arguments)
        try:
            self._plot()
        except Exception as exc:  # the plots are a view; the study and its results are already saved
            log.warning("Optuna plots not drawn: %s", exc)

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import optuna
        from optuna.visualization import matplotlib as views

        study = optuna.load_study(study_name=self.study_name, storage=self.storage)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        plots = self.sweep_dir / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        drawn: dict[str, Callable[[optuna.Study], Any]] = {"optuna_history": views.plot_optimization_history}
        if len(done) > 1 and len(done[0].params) > 1:
            drawn["optuna_importance"] = views.plot_param_importances
        for name, draw in drawn.items():
            with warnings.catch_warnings():  # Optuna marks its matplotlib views experimental, not deprecated
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                draw(study)
            plt.gcf().savefig(plots / f"{name}.png", bbox_inches="tight")
            plt.close("all")
