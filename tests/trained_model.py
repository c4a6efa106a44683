"""One short real training shared by the export, predict and serve tests.

:func:`trained_run` trains a tiny tied U-Net (64x64, base width 8, 3 levels,
``num_iterations: 2``) on 48 Kvasir-SEG training frames for 3 epochs, tracked in a
SQLite MLflow store, once per test process (about a minute on 2 CPU cores); the test
modules that need it call it from a fixture.
"""

import dataclasses

from segtie import config as cfg
from segtie.training import train

_CACHE = {}


@dataclasses.dataclass
class TrainedRun:
    config: cfg.Config
    result: object  # segtie.training.TrainResult
    tracking_uri: str
    root: object  # pathlib.Path of the run's temporary folder

    @property
    def run_uri(self) -> str:
        return f"runs:/{self.result.mlflow_run_id}/model"


def trained_run(kvasir_data_config, tmp_path_factory) -> TrainedRun:
    """The shared training run (trained on the first call)."""
    if "run" not in _CACHE:
        root = tmp_path_factory.mktemp("trained")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        data = dataclasses.asdict(kvasir_data_config)
        data.update(image_size=[64, 64], batch_size=8, max_train_cases=48, max_eval_cases=8)
        config = cfg.from_dict({
            "data": data,
            "model": {"base_filters": 8, "depth": 3, "num_iterations": 2},
            "train": {"epochs": 3, "learning_rate": 0.003, "warmup_epochs": 0,
                      "output_dir": str(root / "runs"), "seed": 3},
            "eval": {"output_dir": str(root / "eval"), "num_overlays": 0},
            "tracking": {"tracking_uri": uri, "experiment": "export-tests"},
        })
        _CACHE["run"] = TrainedRun(config, train(config), uri, root)
    return _CACHE["run"]
