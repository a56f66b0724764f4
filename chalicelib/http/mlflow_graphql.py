"""``/mlflow/graphql``: MLflow's GraphQL schema, executed by graphql-core, resolved onto the services.

The schema is MLflow's own (``mlflow_schema.graphql``, printed from the pinned release), so the
UI's four operations (``SearchRuns``, ``MlflowGetExperimentQuery``, ``GetRun``,
``GetMetricHistoryBulkInterval``) and anything else it may send validate exactly as on
``mlflow server``. Resolvers call the same service methods as the REST routes and hand back
their wire forms (proto JSON, snake_case); one field resolver reads a camelCase GraphQL field from
the snake_case key. A domain error becomes the response's ``apiError`` (``code``, ``message``),
which the UI shows as MLflow's own. Imported only by the GraphQL route: graphql-core costs ~60 ms
of cold start the other routes do not pay.

Bounds, as MLflow's ``check_query_safety`` and before execution: the document at most 64 KiB and
5,000 tokens (graphql-core's parser limits), at most 10 root fields and 10 aliases per selection
set; the schema has no cycles, so depth is bounded by the schema itself.
"""
from __future__ import annotations

import math
import pathlib
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLFloat,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    build_schema,
    execute,
    parse,
    specified_rules,
    validate,
)

from .. import services
from ..auth.errors import AuthError
from ..mlflowapi.errors import MlflowError
from . import mlflow_access as acl
from .mlflow_artifact_lists import list_run_artifacts

if TYPE_CHECKING:
    from ..tracking.entities import Run

SCHEMA_FILE = pathlib.Path(__file__).with_name("mlflow_schema.graphql")
MAX_SOURCE = 64 * 1024
MAX_TOKENS = 5000
MAX_ROOT_FIELDS = 10  # MLFLOW_SERVER_GRAPHQL_MAX_ROOT_FIELDS's default
MAX_ALIASES = 10  # MLFLOW_SERVER_GRAPHQL_MAX_ALIASES's default
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    built = build_schema(SCHEMA_FILE.read_text())
    long_string = built.type_map["LongString"]
    assert isinstance(long_string, GraphQLScalarType)
    # MLflow's LongString: int64 as a string, so JavaScript does not round it.
    long_string.serialize = lambda value: str(value)  # type: ignore[method-assign]
    long_string.parse_value = lambda value: int(value)  # type: ignore[method-assign]
    return built


class _Bounded(ValidationRule):
    """MLflow's limits on root fields and aliases (alias amplification: one request, many searches)."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        if len(node.selection_set.selections) > MAX_ROOT_FIELDS:
            self.report_error(GraphQLError(f"GraphQL queries should have at most {MAX_ROOT_FIELDS} root fields"))

    def enter_selection_set(self, node: SelectionSetNode, *_: Any) -> None:
        aliases = sum(1 for s in node.selections if isinstance(s, FieldNode) and s.alias)
        if aliases > MAX_ALIASES:
            self.report_error(GraphQLError(f"GraphQL queries should have at most {MAX_ALIASES} aliases"))


def run_query(query: Any, variables: Any, operation_name: Any) -> dict[str, Any]:
    """MLflow's response shape: ``{"data": ..., "errors": [message, ...] | None}``."""
    if not isinstance(query, str) or not query:
        return _failed("GraphQL request must carry a 'query' string")
    if variables is not None and not isinstance(variables, dict):
        return _failed("'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        return _failed("'operationName' must be a string")
    if len(query) > MAX_SOURCE:
        return _failed(f"GraphQL query longer than {MAX_SOURCE} characters")
    try:
        document = parse(query, max_tokens=MAX_TOKENS)
    except GraphQLError as err:
        return _failed(err.message)
    errors = validate(schema(), document, [*specified_rules, _Bounded])
    if errors:
        return {"data": None, "errors": [e.message for e in errors]}
    result = execute(schema(), document, root_value=_ROOT, context_value={}, variable_values=variables,
                     operation_name=operation_name, field_resolver=_field)
    assert isinstance(result, ExecutionResult)  # every resolver is synchronous
    return {"data": result.data, "errors": [e.message for e in result.errors] if result.errors else None}


def _failed(message: str) -> dict[str, Any]:
    return {"data": None, "errors": [message]}


def _field(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """A camelCase field from its snake_case wire key; callables (root and run fields) are resolvers."""
    if not isinstance(source, dict):
        return None
    value = source.get(_CAMEL.sub("_", info.field_name).lower())
    if callable(value):
        return value(info, **args)
    if isinstance(value, str) and info.return_type is GraphQLFloat:
        return None  # "NaN"/"Infinity" in proto JSON; GraphQL's Float has no such value (MLflow: null)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _guarded(resolve: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A domain error as the response's ``apiError``, the way the UI reads MLflow's failures."""
    def wrapper(info: GraphQLResolveInfo, input: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:  # noqa: A002
        try:
            return resolve(info.context, input or {})
        except MlflowError as err:
            return {"api_error": {"code": err.error_code, "message": err.message}}
        except AuthError as err:
            return {"api_error": {"code": err.code, "message": err.message}}
    return wrapper


# -- resolvers: (request context, input) -> the response's wire form --------------------------------
def _run(context: dict[str, Any], run: Run) -> dict[str, Any]:
    """MLflow's ``MlflowRunExtension``: the run plus its experiment and model versions, read on demand."""
    wire = run.to_wire()
    eid, rid = run.info.experiment_id, run.info.run_id
    wire["experiment"] = lambda info, **_: _experiment(context, eid)
    wire["model_versions"] = lambda info, **_: [
        mv.to_wire() for mv in services.registry().search_model_versions(
            f"run_id = '{rid}'", visible=acl.tag_filter()).items]
    return wire


def _experiment(context: dict[str, Any], experiment_id: str) -> dict[str, Any]:
    cache = context.setdefault("experiments", {})  # a page of runs shares one experiment read
    if experiment_id not in cache:
        acl.experiment(experiment_id, acl.READ)
        cache[experiment_id] = services.tracking().get_experiment(experiment_id).to_wire()
    return dict(cache[experiment_id])


def _get_experiment(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": _experiment(context, str(data.get("experimentId") or ""))}


def _get_run(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    from ..mlflowapi import validation as v
    run_id = v.run_id(data.get("runId") or data.get("runUuid"))
    acl.run(run_id, acl.READ)
    return {"run": _run(context, services.tracking().get_run(run_id))}


def _search_runs(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    page = services.tracking().search_runs(
        acl.readable_experiments([str(e) for e in data.get("experimentIds") or [] if e is not None]), data.get("filter"),
        data.get("runViewType"), data.get("maxResults"), [str(o) for o in data.get("orderBy") or [] if o],
        data.get("pageToken"))
    return {"runs": [_run(context, run) for run in page.items], "next_page_token": page.token}


def _metric_history(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    run_ids = [str(r) for r in data.get("runIds") or [] if r is not None]
    for run_id in run_ids:
        acl.run(run_id, acl.READ)
    metrics = services.tracking().get_metric_history_bulk_interval(
        run_ids, str(data.get("metricKey") or ""),
        data.get("startStep"), data.get("endStep"), data.get("maxResults"))
    return {"metrics": [m.to_wire() for m in metrics]}


def _list_artifacts(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return list_run_artifacts(data.get("runId") or data.get("runUuid"), data.get("path"))


def _search_model_versions(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    page = services.registry().search_model_versions(data.get("filter"), data.get("maxResults"),
                                                     [str(o) for o in data.get("orderBy") or [] if o],
                                                     data.get("pageToken"), acl.tag_filter())
    return {"model_versions": [mv.to_wire() for mv in page.items], "next_page_token": page.token}


def _search_datasets(context: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    summaries = services.tracking().search_datasets(
        acl.readable_experiments([str(e) for e in data.get("experimentIds") or [] if e]))
    return {"dataset_summaries": summaries}


def _echo(info: GraphQLResolveInfo, inputString: str | None = None, **_: Any) -> dict[str, Any]:  # noqa: N803
    return {"output": inputString}


_ROOT: dict[str, Any] = {
    "mlflow_get_experiment": _guarded(_get_experiment),
    "mlflow_get_run": _guarded(_get_run),
    "mlflow_search_runs": _guarded(_search_runs),
    "mlflow_get_metric_history_bulk_interval": _guarded(_metric_history),
    "mlflow_list_artifacts": _guarded(_list_artifacts),
    "mlflow_search_model_versions": _guarded(_search_model_versions),
    "mlflow_search_datasets": _guarded(_search_datasets),
    "test": _echo,
    "test_mutation": _echo,
}
