"""Web UIs served by the service: static single-page apps (STAC Browser, MLflow UI) and the landing page."""
