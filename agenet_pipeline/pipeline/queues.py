"""The Celery queues a step goes to when a run uses the Celery executor (deploy/celery.yaml); ignored otherwise.

Steps without a tag go to the run config's default queue, `cpu`. A GPU machine's worker serves `gpu`; any machine's
worker serves `cpu`.
"""

QUEUE_TAG = "dagster-celery/queue"

CPU_QUEUE = {QUEUE_TAG: "cpu"}
GPU_QUEUE = {QUEUE_TAG: "gpu"}
