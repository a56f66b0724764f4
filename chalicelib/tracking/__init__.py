"""MLflow-compatible tracking: experiments, runs, metrics, params, tags, inputs, logged models, artifacts."""
