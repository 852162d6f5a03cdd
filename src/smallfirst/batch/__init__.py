"""High-volume runs: resumable, exactly-once output, locally (asyncio) or on Ray."""

from smallfirst.batch.runner import BatchOptions, BatchSummary, run_batch
from smallfirst.batch.spec import WorkSpec

__all__ = ["BatchOptions", "BatchSummary", "WorkSpec", "run_batch"]
