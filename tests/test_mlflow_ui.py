"""The MLflow UI as a reviewer uses it: a real server, headless Chromium, a tiny real run.

A tiny real training on Kvasir-SEG (``tiny_config``) and its evaluation (with
``--promote``) go to a fresh SQLite store; the real ``mlflow server`` serves it on
127.0.0.1 (started before training, so its start-up overlaps the training); Playwright
drives Debian's Chromium (``/usr/bin/chromium``, never a downloaded browser) from the
experiment list to the training run, and checks what the run page shows: the
description, the dataset input and the link to the evaluation run; the metrics charts;
the validation overlay image; then the evaluation run: its description links back to
the training run, its test-set input, its per-case table artifact.

Screenshots (experiment list, runs table, training run, its charts, its overlay,
evaluation run) go to ``$SEGTIE_SCREENSHOT_DIR`` if set, else the test's temporary
folder; the test prints where.
"""

import os
import shutil
from pathlib import Path

import mlflow
import pytest
from PIL import Image

from segtie import cli
from segtie.tracking import open_experiment
from segtie.training import train

import mlflow_server
from realdata import require_file
from tiny_config import tiny_config

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
EXPERIMENT = "segtie-ui"
SCREENSHOT_ENV = "SEGTIE_SCREENSHOT_DIR"
WAIT_MS = 30_000  # the longest wait for one element (a busy 2-core machine)


def _chromium() -> Path:
    return require_file(CHROMIUM, f"{CHROMIUM} is missing: apt-get install -y chromium "
                                  f"(.ci/run does it)")


@pytest.fixture()
def ui_store(kvasir_data_config, tmp_path, monkeypatch):
    """A store with one tiny training and its evaluation, and a server on it."""
    chromium = _chromium()
    monkeypatch.chdir(tmp_path)  # evaluation reports go to ./runs/eval
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_experiment(uri, EXPERIMENT)  # the schema first: the server must not race us
    process, url = mlflow_server.start(uri, tmp_path / "server.log")
    try:
        config = tiny_config(kvasir_data_config, tmp_path / "runs", tracking={
            "enabled": True, "tracking_uri": uri, "experiment": EXPERIMENT,
            "system_metrics_interval": 1.0})
        result = train(config)
        assert cli.main(["evaluate", "--checkpoint", str(result.checkpoint),
                         "--promote"]) == 0
        client = mlflow.MlflowClient(uri)
        train_run = client.get_run(result.mlflow_run_id)
        champion = client.get_model_version_by_alias("segtie-kvasir_seg", "champion")
        assert champion.run_id == result.mlflow_run_id  # --promote: the first champion
        eval_id = train_run.data.tags["segtie.eval_run_id"]
        mlflow_server.wait_until_healthy(process, url, tmp_path / "server.log")
        yield {"url": url, "uri": uri, "result": result, "train_run": train_run,
               "eval_run": client.get_run(eval_id), "chromium": chromium,
               "experiment_id": train_run.info.experiment_id}
    finally:
        mlflow_server.stop(process)


def _screens(tmp_path, capsys) -> Path:
    folder = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "screens")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with capsys.disabled():
        print(f"\nMLflow UI screenshots: {folder}")
    return folder


def test_a_reviewer_finds_curves_overlays_and_the_evaluation_in_the_mlflow_ui(
        ui_store, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    screens = _screens(tmp_path, capsys)
    base, exp = ui_store["url"], ui_store["experiment_id"]
    train_run, eval_run = ui_store["train_run"], ui_store["eval_run"]
    train_id, eval_id = train_run.info.run_id, eval_run.info.run_id
    overlay_width = Image.open(ui_store["result"].run_dir / "val_overlays.png").size[0]
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(ui_store["chromium"]),
                                             args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        # The experiment list, in MLflow's "Model training" view.
        page.goto(f"{base}/#/experiments")
        page.get_by_text("Model training", exact=True).click()
        page.get_by_role("button", name="Close").first.click()  # the assistant panel
        link = page.get_by_role("link", name=EXPERIMENT, exact=True)
        expect(link).to_be_visible()
        page.screenshot(path=screens / "1_experiment_list.png")
        # The experiment's runs: the training run and its evaluation, with datasets.
        link.click()
        run_link = page.get_by_role("link", name=train_run.info.run_name)
        expect(run_link).to_be_visible()
        expect(page.get_by_text("kvasir_seg-test (", exact=False)).to_be_visible()
        page.screenshot(path=screens / "2_runs.png")
        # The training run: description, dataset input, tags, the evaluation's id.
        run_link.click()
        expect(page.get_by_text("Recipe", exact=True)).to_be_visible()
        body = page.inner_text("body")
        assert "each block applies one 3x3 kernel 2 times" in body
        assert f"{train_run.data.metrics['num_params']:,.0f} unique (stored)" in body
        digests = {d.dataset.name: d.dataset.digest for d in train_run.inputs.dataset_inputs}
        assert f"kvasir_seg-train ({digests['kvasir_seg-train']})" in body
        for key, value in (("segtie.scheme", "iter2"), ("segtie.param_bucket", "<10k"),
                           ("segtie.eval_run_id", eval_id)):  # the link to the evaluation
            expect(page.locator(f'[title="{key}"]').first).to_be_attached()
            expect(page.locator(f'[title="{value}"]').first).to_be_attached()
        page.screenshot(path=screens / "3_training_run.png", full_page=True)
        # The metrics charts (plotly), val_dice among them.
        page.get_by_role("tab", name="Model metrics").click()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        page.get_by_placeholder("Search metric charts").fill("val_")  # charts render lazily
        for name in ("val_dice", "val_loss"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        expect(page.locator(".js-plotly-plot")).to_have_count(3)  # and best_val_dice
        page.screenshot(path=screens / "4_training_metrics.png")
        # The validation overlay, decoded by the browser at its real size.
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("val_overlays.png", exact=True).click()
        image = page.locator('img[src^="blob:"]').first
        expect(image).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") == overlay_width
        page.screenshot(path=screens / "5_training_overlay.png")
        # The evaluation run, by the id the training run shows; it links back.
        page.goto(f"{base}/#/experiments/{exp}/runs/{eval_id}")
        back = page.locator(f'a[href="#/experiments/{exp}/runs/{train_id}"]').first
        expect(back).to_be_visible()
        back_href = back.get_attribute("href")
        body = page.inner_text("body")
        assert f"Evaluation of training run {train_id}" in body
        assert "kvasir_seg-test (" in body
        assert "test_dice_mean" in body
        page.screenshot(path=screens / "6_evaluation_run.png", full_page=True)
        page.get_by_role("tab", name="Artifacts").click()
        expect(page.get_by_text("per_case_table.json", exact=True)).to_be_visible()
        expect(page.get_by_text("dice_boxplot.png", exact=True)).to_be_visible()
        page.goto(f"{base}/{back_href}")  # MLflow opens a note's links in a new tab
        expect(page.get_by_text("Recipe", exact=True)).to_be_visible()  # back at training
        browser.close()
    for name in ("1_experiment_list", "2_runs", "3_training_run", "4_training_metrics",
                 "5_training_overlay", "6_evaluation_run"):
        assert Image.open(screens / f"{name}.png").size[0] >= 1400
