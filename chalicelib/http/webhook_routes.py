"""``POST /webhooks/gitlab``: GitLab's project, group and system hooks -> one change record each.

The secret (``X-Gitlab-Token``) is checked before the body is read; the answer comes as soon as the
record is written (``datasets.webhook``), well within GitLab's 10 s.
"""
from __future__ import annotations

from chalice import Blueprint, Response

from .. import services

webhook_api = Blueprint(__name__)


@webhook_api.route("/gitlab", methods=["POST"])
def gitlab_webhook() -> Response:
    request = webhook_api.current_request
    answer = services.webhooks().receive(request.headers.get("x-gitlab-token"), request.raw_body or b"")
    return Response(body=answer.body, status_code=answer.status, headers={"Content-Type": "application/json"})
