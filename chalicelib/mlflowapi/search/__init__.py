"""MLflow's search filters and order_by for our services, without importing mlflow.

``mlflow.utils.search_utils`` would do, but importing any mlflow module runs ``mlflow/__init__``
(~1.5 s and ~146 MB on a cold Lambda); this package parses the same grammar with the same
library (sqlparse) and evaluates it with MLflow's semantics and error messages. Page tokens are
in ``mlflowapi.pages``.
"""
from __future__ import annotations

from .entities import EXPERIMENTS, LOGGED_MODELS, MODEL_VERSIONS, REGISTERED_MODELS, RUNS, ModelMetric, Subject
from .grammar import METRIC, PARAM, TAG

__all__ = ["EXPERIMENTS", "LOGGED_MODELS", "MODEL_VERSIONS", "REGISTERED_MODELS", "RUNS", "METRIC", "PARAM", "TAG",
           "ModelMetric", "Subject"]
