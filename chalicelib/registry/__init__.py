"""MLflow-compatible model registry: registered models, versions, aliases."""
