"""``/``: a small page linking the web UIs for browsers, the service's links for JSON clients."""
from __future__ import annotations

import html
import json

from chalice import Blueprint, Response

from .page_cache import shared_page
from .urls import base_url

landing_api = Blueprint(__name__)

# (rel, path, media type, title): the service's entry points.
LINKS = (
    ("self", "/", "application/json", "stacflow"),
    ("service-doc", "/browser/", "text/html", "STAC Browser: discover datasets and models"),
    ("service-doc", "/mlflow/", "text/html", "MLflow UI: runs, comparisons, registered models"),
    ("data", "/stac", "application/json", "STAC API"),
    ("service", "/mlflow", "application/json", "MLflow tracking URI (mlflow client)"),
    ("status", "/health", "application/json", "Health"),
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>stacflow</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}
a{{color:#0b5cad}}li{{margin:.4rem 0}}code{{background:#f3f3f3;padding:0 .3rem}}</style></head>
<body><h1>stacflow</h1>
<p>MLOps discovery and tracking for Earth-observation machine learning.</p>
<ul>
<li><a href="{base}/browser/">STAC Browser</a>: datasets and models, on a map, with search</li>
<li><a href="{base}/mlflow/">MLflow UI</a>: experiments, runs, comparisons, registered models</li>
<li><a href="{base}/stac">STAC API</a> (<code>pystac_client.Client.open("{base}/stac")</code>)</li>
<li>MLflow tracking URI: <code>{base}/mlflow</code></li>
</ul></body></html>
"""


def _wants_html(accept: str) -> bool:
    """Browsers list text/html first; JSON clients (curl, pystac, requests) ask for JSON or */*."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "text/html" in kinds and ("application/json" not in kinds
                                     or kinds.index("text/html") < kinds.index("application/json"))


@landing_api.route("/", methods=["GET"])
@shared_page
def landing() -> Response:
    request = landing_api.current_request
    base = base_url(request)
    if _wants_html(request.headers.get("accept", "")):
        page = _PAGE.format(base=html.escape(base, quote=True))
        return Response(body=page, status_code=200,
                        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})
    doc = {"id": "stacflow", "title": "stacflow",
           "links": [{"rel": rel, "href": base + path, "type": kind, "title": title}
                     for rel, path, kind, title in LINKS]}
    return Response(body=json.dumps(doc), status_code=200, headers={"Content-Type": "application/json"})


@landing_api.route("/favicon.ico", methods=["GET"])
def favicon() -> Response:
    """Browsers ask every host for one; "no content" (cached a day) rather than a 404 in every console."""
    return Response(body="", status_code=204, headers={"Cache-Control": "public, max-age=86400"})
