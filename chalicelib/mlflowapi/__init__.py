"""MLflow's protocol rules, in one place for the tracking store, the registry and the artifact API.

As MLflow serves both of its stores from ``mlflow/utils/validation.py`` and ``search_utils.py``:
``errors`` (error codes, statuses and shared messages), ``fields`` (typed access to request
messages), ``validation`` (MLflow's input rules), ``search`` (filter and order_by grammar),
``pages`` (page tokens, pages capped by a response's size) and ``clock``. None of it imports
mlflow, chalice or the store.
"""
