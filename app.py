"""The Chalice app: wires the API blueprints and the event sources. No logic lives here."""
from __future__ import annotations

from chalice import Chalice
from chalice.app import SQSEvent

from chalicelib.http import cors
from chalicelib.http.artifact_routes import BINARY_TYPES, artifact_api
from chalicelib.http.auth import announce
from chalicelib.http.files import files_api
from chalicelib.http.landing import landing_api
from chalicelib.http.mlflow_routes import mlflow_api
from chalicelib.http.observe import http_middleware
from chalicelib.http.mlflow_ui_routes import MLFLOW_BUNDLE_DEPTH, ui_api
from chalicelib.http.registry_routes import registry_api
from chalicelib.http.signin import auth_api
from chalicelib.http.stac_routes import stac_api
from chalicelib.http.static_routes import BINARY_TYPES as UI_BINARY_TYPES, site_blueprint
from chalicelib.http.webhook_routes import webhook_api
from chalicelib.settings import Settings
from chalicelib.ui.static import STAC_BROWSER_CSP

app = Chalice(app_name="stacflow")
app.api.binary_types.extend(BINARY_TYPES)  # artifact uploads reach the Lambda as bytes
app.api.binary_types.extend(t for t in UI_BINARY_TYPES if t not in app.api.binary_types)  # UI fonts, icons
app.register_middleware(http_middleware, "http")  # correlation ids, access log, request metrics
app.register_middleware(cors.middleware, "http")
app.register_blueprint(landing_api)
app.register_blueprint(stac_api, url_prefix="/stac")
app.register_blueprint(mlflow_api, url_prefix="/mlflow")
app.register_blueprint(registry_api, url_prefix="/mlflow")
app.register_blueprint(artifact_api, url_prefix="/mlflow")
app.register_blueprint(ui_api, url_prefix="/mlflow")  # what the MLflow web UI calls
app.register_blueprint(files_api, url_prefix="/files")
app.register_blueprint(webhook_api, url_prefix="/webhooks")
app.register_blueprint(auth_api, url_prefix="/auth")
app.register_blueprint(site_blueprint("browser", history=True, csp=STAC_BROWSER_CSP), url_prefix="/browser")
# MLflow's UI as `mlflow server --static-prefix /mlflow` serves it: index.html at /mlflow/, the bundle
# (4 segments deep) under /mlflow/static-files/; its routes are hash routes, so no history fallback.
app.register_blueprint(site_blueprint("mlflow", history=False, depth=0), url_prefix="/mlflow")
app.register_blueprint(site_blueprint("mlflow", history=False, depth=MLFLOW_BUNDLE_DEPTH),
                       url_prefix="/mlflow/static-files")
announce()  # a loud warning in the cold start's log when access control is off

# S3 notifications reach the functions through SQS (retries and a dead-letter queue;
# packages as CloudFormation and Terraform alike). See README "Deployment".
EVENTS_QUEUE = Settings.from_env().events_queue


@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


# Chalice's SQS wrapper returns the handler's value to Lambda: the partial batch response (only the
# failed messages are retried). The mapping's ReportBatchItemFailures, the queue, its dead-letter queue
# and the bucket notifications come from deploy/stack.py (Chalice 1.34 cannot express them).
@app.on_sqs_message(queue=EVENTS_QUEUE, batch_size=10)
def on_store_event(event: SQSEvent) -> dict[str, list[dict[str, str]]]:
    from chalicelib import services
    from chalicelib.events.sqs import handle_sqs_batch
    return handle_sqs_batch(event.to_dict(), services.root())
