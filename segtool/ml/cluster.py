"""This process's place in a multi-host training job, read from ``TF_CONFIG`` (no TensorFlow).

``TF_CONFIG`` is TensorFlow's standard description of a cluster, one JSON object per process::

    {"cluster": {"worker": ["node1:12345", "node2:12345"]},
     "task": {"type": "worker", "index": 0}}

The chief is the ``chief`` task when the cluster names one, otherwise worker 0; it alone
writes files. Reading the role needs no TensorFlow, so ``segtool train --distributed`` can
refuse a bad ``TF_CONFIG`` and decide who takes the project lock before TensorFlow starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from segtool.core.errors import SegtoolError

TASK_TYPES = ("chief", "worker")
GUIDE = "docs/distributed.md"


@dataclass(frozen=True)
class ClusterRole:
    """Who this process is in the job: its task, the cluster size, whether it is the chief."""

    task_type: str
    task_index: int
    addresses: tuple[str, ...]
    """Every task's ``host:port``, the chief first, then the workers in order."""
    chief_count: int = 0
    """1 when the cluster has a ``chief`` job, else 0 (worker 0 is then the chief)."""

    @property
    def workers(self) -> int:
        """Processes in the job (the chief included)."""
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.chief_count

    def describe(self) -> str:
        """``"worker 1 of 2 (node2:12345)"``."""
        return (f"{self.task_type} {self.task_index} of {self.workers} "
                f"({self.own_address})")

    @property
    def own_address(self) -> str:
        offset = 0 if self.task_type == "chief" else self.chief_count
        return self.addresses[offset + self.task_index]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ClusterRole:
        """The role ``TF_CONFIG`` gives this process.

        Raises SegtoolError (pointing at the guide) when it is missing or malformed.
        """
        environ = os.environ if environ is None else environ
        text = environ.get("TF_CONFIG", "").strip()
        if not text:
            raise SegtoolError(f"--distributed needs the TF_CONFIG environment variable: the "
                               f"cluster's addresses and this process's task (see {GUIDE})")
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise SegtoolError(f"TF_CONFIG is not JSON ({error})") from None
        return cls.from_config(config)

    @classmethod
    def from_config(cls, config: object) -> ClusterRole:
        """The role in a parsed ``TF_CONFIG``; SegtoolError saying what is wrong with it."""
        if not isinstance(config, dict):
            raise SegtoolError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
        cluster, task = config.get("cluster"), config.get("task")
        if not isinstance(cluster, dict) or not isinstance(task, dict):
            raise SegtoolError("TF_CONFIG must have a 'cluster' object and a 'task' object")
        unknown = sorted(set(cluster) - set(TASK_TYPES))
        if unknown:
            raise SegtoolError(f"TF_CONFIG's cluster has {', '.join(unknown)} jobs; segtool "
                               "trains with 'worker' jobs (and optionally one 'chief') only")
        jobs: dict[str, list[str]] = {}
        for name in TASK_TYPES:
            addresses = cluster.get(name, [])
            if not isinstance(addresses, list) or not all(
                    isinstance(a, str) and a for a in addresses):
                raise SegtoolError(f"TF_CONFIG's cluster['{name}'] must be a list of "
                                   "'host:port' strings")
            jobs[name] = addresses
        if len(jobs["chief"]) > 1:
            raise SegtoolError("TF_CONFIG's cluster can have one chief at most")
        task_type, index = task.get("type"), task.get("index", 0)
        if task_type not in TASK_TYPES:
            raise SegtoolError(f"TF_CONFIG's task type must be 'chief' or 'worker', "
                               f"got {task_type!r}")
        if not isinstance(index, int) or isinstance(index, bool) or not (
                0 <= index < len(jobs[task_type])):
            raise SegtoolError(f"TF_CONFIG's task index {index!r} is not one of the "
                               f"{len(jobs[task_type])} '{task_type}' addresses")
        addresses = tuple(jobs["chief"] + jobs["worker"])
        if len(set(addresses)) != len(addresses):
            raise SegtoolError("TF_CONFIG's cluster lists an address twice")
        return cls(task_type, index, addresses, len(jobs["chief"]))
