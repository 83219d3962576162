"""Where one training run executes: one device, every GPU of the host, or several hosts.

A :class:`Distribution` wraps a ``tf.distribute`` strategy (or none) with what training needs
to know about it: the local devices, the replica count, which worker this process is and
whether it is the chief. :func:`local_distribution` mirrors over every visible GPU when
there are two or more (``MirroredStrategy``) and uses no strategy at all on one device, so a
single device pays nothing. :func:`cluster_distribution` joins a multi-host job
(``MultiWorkerMirroredStrategy``, configured by ``TF_CONFIG``; see docs/distributed.md).

Several processes must take the same decisions at the same step (stop, learning rate,
validate), or their collective operations wait for each other forever:
:meth:`Distribution.from_chief` hands every process the chief's values.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.ml.backend import keras, tf
from segtool.ml.cluster import ClusterRole

log = logging.getLogger(__name__)

# A peer that died or cannot be reached shows up as one of these on the others.
PEER_FAILURES = () if tf is None else (
    tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError,
    tf.errors.AbortedError)


@dataclass(eq=False)
class Distribution:
    """A training run's devices: ``strategy`` None means one device and no tf.distribute.

    ``devices`` are this process's devices (one replica each); ``role`` is set in a
    multi-host job.
    """

    strategy: tf.distribute.Strategy | None
    devices: tuple[str, ...]
    role: ClusterRole | None = None
    _chief_sum: Callable[[object], tf.Tensor] | None = field(default=None, init=False,
                                                            repr=False)

    @property
    def replicas(self) -> int:
        """Replicas in sync over the whole job (each takes ``batch_size`` patches a step)."""
        return int(self.strategy.num_replicas_in_sync) if self.strategy is not None else 1

    @property
    def local_replicas(self) -> int:
        return len(self.devices) if self.strategy is not None else 1

    @property
    def workers(self) -> int:
        return self.role.workers if self.role is not None else 1

    @property
    def worker_index(self) -> int:
        """0 for the chief, then the workers in ``TF_CONFIG`` order."""
        if self.role is None:
            return 0
        return self.role.addresses.index(self.role.own_address)

    @property
    def is_chief(self) -> bool:
        """True for the one process that writes files."""
        return self.role is None or self.role.is_chief

    @property
    def coordinated(self) -> bool:
        """True when other processes take part: decisions must come from the chief."""
        return self.workers > 1

    @property
    def kind(self) -> str:
        if self.strategy is None:
            return "single device"
        return "MultiWorkerMirroredStrategy" if self.role is not None else "MirroredStrategy"

    def describe(self) -> str:
        """One line: ``"2 replicas (MirroredStrategy on GPU:0, GPU:1)"``."""
        if self.strategy is None:
            return "1 replica (single device)"
        devices = ", ".join(_short(name) for name in self.devices)
        where = f"{self.workers} workers, " if self.role is not None else ""
        return f"{self.replicas} replicas ({self.kind}: {where}{devices} here)"

    def sidecar(self, batch_size: int) -> dict:
        """What a model's sidecar records about the run's devices."""
        return {"strategy": self.kind if self.strategy is not None else None,
                "replicas": self.replicas, "workers": self.workers,
                "devices": [_short(name) for name in self.devices],
                "global_batch": batch_size * self.replicas}

    def scope(self) -> contextlib.AbstractContextManager:
        """The strategy's scope (variables created in it are mirrored), or a no-op."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def per_replica(self, array: np.ndarray) -> object:
        """This process's ``(local_replicas * B, ...)`` batch split into one part a replica."""
        parts = np.split(array, self.local_replicas)

        def value(context: tf.distribute.experimental.ValueContext) -> tf.Tensor:
            index = context.replica_id_in_sync_group % self.local_replicas
            with tf.device(self.devices[index]):  # copied to its device now, not in the step
                return tf.identity(parts[index])

        return self.strategy.experimental_distribute_values_from_function(value)

    def from_chief(self, values: Sequence[float]) -> list[float]:
        """The chief's ``values`` on every process (unchanged when no other process takes part).

        A collective operation: every process must call it at the same point.
        """
        if not self.coordinated:
            return [float(v) for v in values]
        mine = np.asarray(values, np.float32)
        if not self.is_chief:
            mine = np.zeros_like(mine)
        # Replica 0 is the chief's first device: it alone contributes to the sum.
        contribution = self.strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(mine) * tf.cast(
                tf.equal(context.replica_id_in_sync_group, 0), tf.float32))
        if self._chief_sum is None:
            strategy = self.strategy

            @tf.function(autograph=False)
            def chief_sum(per_replica: object) -> tf.Tensor:
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._chief_sum = chief_sum
        return [float(v) for v in self._chief_sum(contribution).numpy()]

    @contextlib.contextmanager
    def peer_failures(self) -> Iterator[None]:
        """Within the block, a lost peer becomes one SegtoolError line instead of a traceback."""
        if not self.coordinated:
            yield
            return
        try:
            yield
        except PEER_FAILURES as error:
            raise SegtoolError(f"the distributed job stopped: {_peer_failure(error)}; no model "
                               "saved (each worker's own output says what happened there)"
                               ) from None


_local: dict[tuple[str, ...], Distribution] = {}
_cluster: Distribution | None = None


def local_distribution(devices: Sequence[str] | None = None) -> Distribution:
    """Mirror over ``devices`` (default: every visible GPU) when there are two or more.

    One device (or none but the CPU) gives a Distribution without a strategy, so training
    runs exactly as it would without tf.distribute. The strategy is made once per device
    list and reused. On Keras's JAX backend there is no strategy: training runs on JAX's
    default device.
    """
    if tf is None:
        return Distribution(None, tuple(devices or ()) or ("default",))
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    names = tuple(devices)
    if len(names) < 2:
        return Distribution(None, names or ("CPU",))
    if names not in _local:
        _local[names] = Distribution(tf.distribute.MirroredStrategy(list(names)), names)
        log.info("training mirrored over %s", ", ".join(names))
    return _local[names]


def cluster_distribution(role: ClusterRole) -> Distribution:
    """Join the multi-host job that ``TF_CONFIG`` describes (``role`` is read from it).

    Call it before TensorFlow runs anything else in this process (set threads and memory
    growth first): it waits until every worker of the job has joined. Made once per process.
    """
    global _cluster
    if tf is None:
        raise SegtoolError("multi-host training needs Keras's TensorFlow backend "
                           f"(KERAS_BACKEND is {keras.backend.backend()})")
    if _cluster is None:
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except PEER_FAILURES as error:
            raise SegtoolError(f"the distributed job stopped while starting: "
                               f"{_peer_failure(error)}") from None
        devices = tuple(strategy.extended.worker_devices)
        _cluster = Distribution(strategy, devices, role)
        log.info("joined the job as %s: %s", role.describe(), _cluster.describe())
    return _cluster


def statistics_averager(model: keras.Model, distribution: Distribution) -> Callable[[], None]:
    """A function giving every replica the mean of the replicas' non-trainable weights.

    Keras creates BatchNormalization's moving statistics without an aggregation, so under
    tf.distribute each replica updates its own copy from its own patches and the copies
    drift apart; inference reads the first. Averaging them before validating and saving
    makes the statistics those of every replica's data. A collective operation in a
    multi-host job: every process calls it at the same step.
    """
    variables = list(model.non_trainable_variables)
    strategy = distribution.strategy

    def replica_average() -> None:
        context = tf.distribute.get_replica_context()
        local = [tf.identity(v.value) for v in variables]  # this replica's own copies
        means = context.all_reduce(tf.distribute.ReduceOp.MEAN, local)
        for variable, mean in zip(variables, means, strict=True):
            variable.assign(mean)

    @tf.function(autograph=False)
    def average_statistics() -> None:
        strategy.run(replica_average)

    def synchronise() -> None:
        if variables:
            average_statistics()

    return synchronise


def _peer_failure(error: tf.errors.OpError) -> str:
    """``"worker 1 failed or cannot be reached (... Connection reset by peer)"``."""
    message = error.message or type(error).__name__
    peer = re.search(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", message)
    who = f"{peer.group(1)} {peer.group(2)}" if peer else "another worker"
    noise = ("Graph execution error", "Detected at node", "File ", "Additional GRPC")
    lines = [line.strip() for line in message.splitlines()]
    reason = next((line for line in lines if line and not line.startswith(noise)),
                  type(error).__name__)
    return f"{who} failed or cannot be reached ({reason})"


def _short(device: str) -> str:
    """``"/job:worker/replica:0/task:1/device:GPU:0"`` -> ``"GPU:0"``."""
    return device.rsplit("device:", 1)[-1].lstrip("/")
