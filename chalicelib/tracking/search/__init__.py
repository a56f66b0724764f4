"""MLflow's search filters, order_by and page tokens for our services, without importing mlflow.

``mlflow.utils.search_utils`` would do, but importing any mlflow module runs ``mlflow/__init__``
(~1.5 s and ~146 MB on a cold Lambda); this package parses the same grammar with the same
library (sqlparse) and evaluates it with MLflow's semantics and error messages.
"""
from __future__ import annotations

from .entities import EXPERIMENTS, LOGGED_MODELS, MODEL_VERSIONS, REGISTERED_MODELS, RUNS, ModelMetric, Subject
from .pages import page_offset, page_token, paginate

__all__ = ["EXPERIMENTS", "LOGGED_MODELS", "MODEL_VERSIONS", "REGISTERED_MODELS", "RUNS", "ModelMetric", "Subject",
           "page_offset", "page_token", "paginate"]
