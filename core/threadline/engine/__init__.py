"""The engine: plans a job, moves Arrow batches from sources to destinations, keeps state."""

from threadline.engine.coerce import Coerced, coerce
from threadline.engine.runner import Progress, RunReport, StreamPlan, plan_job, run_job

__all__ = ["Coerced", "Progress", "RunReport", "StreamPlan", "coerce", "plan_job", "run_job"]
