"""Reads a run folder's TensorBoard scalars with TensorBoard's own event reader and prints
them as JSON ({tag: [[step, value], ...]}), so that tests can compare them with
metrics.jsonl. Usage: python tests/support/read_tensorboard.py RUN_DIR"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

accumulator = EventAccumulator(sys.argv[1])
accumulator.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}))
