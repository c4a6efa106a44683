"""Reading what a test's training wrote to its MLflow store."""

import mlflow


def metric_steps(client: mlflow.MlflowClient, run_id: str, key: str) -> list:
    """The steps logged for metric ``key`` of run ``run_id``, in the store's order."""
    return [m.step for m in client.get_metric_history(run_id, key)]


def only_run(uri: str, experiment: str) -> tuple:
    """``(client, run)`` of the one run of ``experiment`` in store ``uri`` (asserted)."""
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]
