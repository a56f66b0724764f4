"""MLflow's own web UI at /mlflow/, in headless Chromium, against ``stacflow serve`` seeded by the real
mlflow client (24 runs with metric histories, two registered models with versions and an alias).

The UI keeps polling (auto-refresh), so nothing waits for network idle: each check waits for the
element it needs. Screenshots of each main view go to test-output/screenshots/mlflow-*.png.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

import pytest

from scripts.build_mlflow_ui import DEFAULT_DEST, build
from tests.helpers.browser import Console, chromium, screenshot
from tests.helpers.mlflow_seed import IMAGE_ARTIFACT, METRIC, MODELS, TEXT_ARTIFACT, TEXT_CONTENT, Seeded, seed
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow

RUNS, STEPS = 24, 10
RUN_NAME = re.compile(r"^run-\d{4}$")
# The only failed request allowed: MLflow's UI asks who is signed in, and mlflow server without its
# auth app answers 404 (as here until sign-in lands); the UI then carries on anonymously.
ALLOWED_FAILURES = ("/ajax-api/2.0/mlflow/users/current",)


class Ui:
    def __init__(self, base: str, seeded: Seeded, browser: Any) -> None:
        self.base = base  # the origin serving /mlflow/
        self.seeded = seeded
        self.browser = browser

    def open(self, fragment: str) -> tuple[Any, Console, list[str]]:
        """A fresh page at ``/mlflow/#/<fragment>``, with its console errors and failed requests."""
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        console = Console.watch(page)
        failed: list[str] = []
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.request.method} {r.url}"))
        page.goto(f"{self.base}/mlflow/#/{fragment}")
        return page, console, failed

    def run_names(self, page: Any) -> list[str]:
        return [t.strip() for t in page.locator("a").all_inner_texts() if RUN_NAME.match(t.strip())]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    if not (DEFAULT_DEST / "index.html").is_file():
        build()  # what `make setup` does: the bundle out of the installed mlflow wheel
    server = LiveServer(f"file://{tmp_path_factory.mktemp('mlflow-ui')}/store")
    try:
        seeded = seed(server.url + "/mlflow", runs=RUNS, steps=STEPS)
        with chromium() as browser:
            yield Ui(server.url, seeded, browser)
    finally:
        server.stop()


def _close_assistant(page: Any) -> None:
    """Dismiss MLflow's own promotions (the registry's "new UI" modal; the assistant panel it opens on a
    loopback host) so screenshots show the view."""
    page.keyboard.press("Escape")
    close = page.locator("[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count():
        close.first.click(force=True)
    page.wait_for_timeout(300)


def _views(s: Seeded) -> dict[str, tuple[str, str]]:
    """name -> (fragment, text that shows the view has rendered its data)."""
    eid, (r0, r1) = s.experiment_id, s.run_ids[:2]
    return {
        "experiments": ("experiments", "ui-experiment"),
        "overview": (f"experiments/{eid}", "ui-experiment"),
        "runs": (f"experiments/{eid}/runs", f"run-{RUNS - 1:04d}"),
        "run": (f"experiments/{eid}/runs/{r0}", "run-0000"),
        "run-metrics": (f"experiments/{eid}/runs/{r0}/model-metrics", METRIC),
        "run-artifacts": (f"experiments/{eid}/runs/{r0}/artifacts/{TEXT_ARTIFACT}", TEXT_CONTENT.strip()),
        "compare": (f'compare-runs?runs=["{r0}","{r1}"]&experiments=["{eid}"]', "run-0001"),
        "models": ("models", MODELS[1]),
        "model": (f"models/{MODELS[0]}", "Version 2"),
        "model-version": (f"models/{MODELS[0]}/versions/1", "run-0000"),
        # GenAI pages over features this service does not have: empty, never an error
        "traces": (f"experiments/{eid}/traces", "Start tracing"),
        "prompts": ("prompts", "Create your first prompt"),
    }


VIEWS = ["experiments", "overview", "runs", "run", "run-metrics", "run-artifacts", "compare", "models", "model",
         "model-version", "traces", "prompts"]


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_loads_without_errors(ui: Ui, view: str) -> None:
    fragment, marker = _views(ui.seeded)[view]
    page, console, failed = ui.open(fragment)
    page.get_by_text(marker).first.wait_for(timeout=30_000)
    page.wait_for_timeout(2_000)  # late calls (charts, polling) get their chance to fail
    unexpected = [f for f in failed if not any(a in f for a in ALLOWED_FAILURES)]
    # Chromium logs each failed request once more as "Failed to load resource": checked above by URL.
    errors = [e for e in console.errors if not e.startswith("Failed to load resource")]
    _close_assistant(page)  # after the checks: the resize it causes is the screenshot's business
    screenshot(page, f"mlflow-{view}")
    page.close()
    assert (unexpected, errors) == ([], [])


def test_runs_table_filters_with_mlflows_syntax(ui: Ui) -> None:
    page, _, _ = ui.open(f"experiments/{ui.seeded.experiment_id}/runs")
    page.get_by_text(f"run-{RUNS - 1:04d}").first.wait_for(timeout=30_000)
    box = page.locator("input[placeholder*='metrics.rmse']")
    box.fill("params.depth = '3' and metrics.accuracy > 0.2")
    box.press("Enter")
    page.get_by_text("run-0002").wait_for(state="detached", timeout=30_000)
    page.wait_for_timeout(500)
    names = ui.run_names(page)
    screenshot(page, "mlflow-runs-filtered")
    page.close()
    # depth = i % 5 = 3 and accuracy = i / 24 > 0.2: runs 8, 13, 18, 23 (3 is below 0.2), newest first
    assert names == ["run-0023", "run-0018", "run-0013", "run-0008"]


def test_runs_table_sorts_by_a_metric(ui: Ui) -> None:
    page, _, _ = ui.open(f"experiments/{ui.seeded.experiment_id}/runs?searchFilter=&orderByKey=metrics.%60accuracy%60"
                         "&orderByAsc=true&startTime=ALL&lifecycleFilter=Active&modelVersionFilter=All+Runs"
                         "&datasetsFilter=W10%3D")
    page.get_by_text(f"run-{RUNS - 1:04d}").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1_000)
    names = ui.run_names(page)
    page.close()
    assert names[:5] == ["run-0000", "run-0001", "run-0002", "run-0003", "run-0004"]


def test_metric_chart_has_one_point_per_logged_step(ui: Ui) -> None:
    page, _, _ = ui.open(f"experiments/{ui.seeded.experiment_id}/runs/{ui.seeded.run_ids[0]}/model-metrics")
    page.locator(".js-plotly-plot .scatterlayer .trace path.point").nth(STEPS - 1).wait_for(timeout=30_000)
    page.wait_for_timeout(1_000)
    # one trace per (chart, run): the loss history's points; "accuracy" was logged once (no markers)
    per_trace = page.locator(".js-plotly-plot .scatterlayer .trace").evaluate_all(
        "traces => traces.map(t => t.querySelectorAll('path.point').length)")
    page.close()
    assert max(per_trace) == STEPS


def test_compare_shows_both_runs(ui: Ui) -> None:
    s = ui.seeded
    page, _, _ = ui.open(f'compare-runs?runs=["{s.run_ids[0]}","{s.run_ids[1]}"]&experiments=["{s.experiment_id}"]')
    page.get_by_text("run-0001").first.wait_for(timeout=30_000)
    shown = {name for name in ("run-0000", "run-0001", "run-0002") if page.get_by_text(name).count()}
    page.close()
    assert shown == {"run-0000", "run-0001"}


def test_model_page_lists_its_versions_and_alias(ui: Ui) -> None:
    page, _, _ = ui.open(f"models/{MODELS[0]}")
    page.get_by_text("Version 2").first.wait_for(timeout=30_000)
    listed = {v for v in ("Version 1", "Version 2", "Version 3") if page.get_by_text(v, exact=True).count()}
    alias = page.get_by_text("@ champion").count() + page.get_by_text("champion").count()
    page.close()
    assert (listed, alias > 0) == ({"Version 1", "Version 2"}, True)


def test_artifact_preview_shows_the_text_file(ui: Ui) -> None:
    s = ui.seeded
    page, _, _ = ui.open(f"experiments/{s.experiment_id}/runs/{s.run_ids[0]}/artifacts/{TEXT_ARTIFACT}")
    page.get_by_text(TEXT_CONTENT.strip()).wait_for(timeout=30_000)
    page.close()


def test_artifact_preview_shows_the_image(ui: Ui) -> None:
    s = ui.seeded
    page, _, _ = ui.open(f"experiments/{s.experiment_id}/runs/{s.run_ids[0]}/artifacts/{IMAGE_ARTIFACT}")
    image = page.locator("img[src^='blob:']")  # the UI fetches get-artifact and shows the bytes as a blob
    image.first.wait_for(timeout=30_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.first.element_handle())
    width = image.first.evaluate("img => img.naturalWidth")
    _close_assistant(page)
    screenshot(page, "mlflow-artifact-image")
    page.close()
    assert width == 8


def test_version_page_links_to_its_stac_item(ui: Ui) -> None:
    """The cross-link: a published version carries its STAC Browser URL as a tag, shown on its page."""
    page, _, _ = ui.open(f"models/{MODELS[0]}/versions/1")
    page.get_by_text("stac.item_url").first.wait_for(timeout=30_000)
    text = page.locator("body").inner_text()
    page.close()
    assert f"/browser/stac/collections/ai-model/items/{MODELS[0]}-v1" in text
