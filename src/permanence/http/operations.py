"""The operator's routes: liveness (``/healthz``) and Prometheus metrics (``/metrics``).
Both are open: monitoring needs no token, and neither tells anything about the ledger's
contents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from permanence.http import schemas
from permanence.http.answers import AnswerCache
from permanence.http.dependencies import RuntimeDep
from permanence.http.metrics import HttpMetrics

router = APIRouter(tags=["operations"])

UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"description": "Unavailable (the store does not answer) or degraded (events the "
                         "read models could not take): the health report says which.",
          "model": schemas.Health},
}


@router.get("/healthz", summary="Liveness, projection lag and answer-cache counters",
            response_model=schemas.Health, responses=UNHEALTHY)
def get_health(request: Request, rt: RuntimeDep) -> Response:
    """200 when the store answers; 503 (with the reason) when it does not, or when the read
    models hold events they could not take. The 503 is the health report itself (what a
    load balancer or an operator reads), not a problem document."""
    try:
        lag = rt.projector.lag()
    except Exception as e:  # noqa: BLE001 - any store failure means "unhealthy"
        return JSONResponse({"status": "unavailable", "detail": str(e)}, status_code=503)
    answers: AnswerCache = request.app.state.answers
    failed = rt.projector.failures()
    if failed:
        return JSONResponse({"status": "degraded", "store": rt.store.kind, "projection_lag": lag,
                             "projection_failures": failed}, status_code=503)
    return JSONResponse({"status": "ok", "store": rt.store.kind, "projection_lag": lag,
                         "answers": answers.stats().as_dict()})


@router.get("/metrics", summary="Prometheus metrics: requests by route and status, latency",
            response_class=Response,
            responses={200: {"description": "Prometheus text exposition format.",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {
                                 "schema": {"type": "string"}}}}})
def get_metrics(request: Request) -> Response:
    """Request counts and latency histograms by route template, method and status (and,
    under ``permanence daemon --http``, the daemon's projection and sweep metrics)."""
    metrics: HttpMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["router"]
