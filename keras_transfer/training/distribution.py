"""Data-parallel training on the engines each backend trusts: Keras's distribution API on JAX, tf.distribute on TF.

`setup_devices(devices, distribution)` resolves the run's `devices` setting for the current backend and returns
a `DataParallel` plan whose `scope()` must hold model building, compiling and fitting:

- JAX: `keras.distribution.DataParallel` over the first N devices of `keras.distribution.list_devices()`
  (GPUs, TPUs, else CPUs; `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes N CPU devices). Several
  processes (hosts) join through `keras.distribution.initialize` (`jax.distributed.initialize`) when
  `KERAS_DISTRIBUTION_JOB_ADDRESSES` and `KERAS_DISTRIBUTION_NUM_PROCESSES` (> 1) are set; the devices are
  then every process's.
- TensorFlow: `tf.distribute.MirroredStrategy` over N GPUs; on a host without GPUs the CPU is split into N
  logical devices (a rehearsal of the multi-device path: no speed-up). `TF_CONFIG` naming several workers
  gives `tf.distribute.MultiWorkerMirroredStrategy` (every worker's devices).

The rule for batch and learning rate (`DataParallel.batch_and_scale`): a given `batch_size` is the global batch
(one optimizer step sees it, split over the devices), so it must divide by N and the learning rates stay as
they are; an unset one is the single-device batch per device, so the global batch is N times it and every
learning rate is multiplied by N (the linear scaling rule, Goyal et al. 2017). `devices="auto"` is one device.
"""

import contextlib
import dataclasses
import json
import logging
import os

import keras

from keras_transfer.errors import KerasTransferError, unknown_name

DISTRIBUTIONS = ("data_parallel",)
BACKENDS = ("jax", "tensorflow")
DEVICE_WORDS = ("auto", "all")
JOB_ADDRESSES, NUM_PROCESSES, PROCESS_ID = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                            "KERAS_DISTRIBUTION_PROCESS_ID")
log = logging.getLogger(__name__)


def parse_devices(text):
    """`"auto"`, `"all"` or an int, from the command line's text."""
    text = str(text).strip().lower()
    return int(text) if text.isdigit() else text


def check_devices(name, value):
    """Raises a one-line error unless `value` is `"auto"`, `"all"` or an integer >= 1."""
    if value in DEVICE_WORDS or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise KerasTransferError(f"{name} must be 'auto' (one device), 'all' or a number of devices >= 1. "
                             f"Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """A resolved data-parallel plan: `devices` replicas in total, and the engine's object that runs them.

    Args:
        devices: the number of replicas (1: no distribution).
        backend: the Keras backend it was made for.
        engine: a `keras.distribution.DataParallel` (JAX) or a `tf.distribute.Strategy` (TF); `None` on one device.
        kind: `"single"`, `"keras.distribution.DataParallel"`, `"MirroredStrategy"` or `"MultiWorkerMirroredStrategy"`.
    """

    devices: int = 1
    backend: str = None
    engine: object = None
    kind: str = "single"

    def scope(self):
        """The context that model building, `compile` and `fit` must run in."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()

    def batch_and_scale(self, batch_size, single_device_batch):
        """`(global batch, learning-rate factor)` under the module's rule; a given batch must divide by N."""
        if batch_size is None:
            return single_device_batch * self.devices, self.devices
        if batch_size % self.devices:
            raise KerasTransferError(
                f"batch_size is the global batch, split evenly over the {self.devices} devices, so it must divide "
                f"by {self.devices} (e.g. {max(1, batch_size // self.devices) * self.devices}), or leave it unset "
                f"for {self.devices} x the single-device batch. Received: batch_size={batch_size}, "
                f"devices={self.devices}")
        return batch_size, 1

    def even_batches(self, data, batch):
        """`data` (an `ImageFolderData` batched by `batch`) with batches that split evenly over the devices.

        Keras's DataParallel (JAX) shards each batch into N equal slices, and Keras's TensorFlow trainer
        cannot build its metrics on a batch MirroredStrategy split unevenly; so a last partial batch that does
        not divide by N is cut to a multiple of N: at most N-1 images an epoch (a different few each epoch
        where the training data are shuffled) and N-1 of the validation images. The test split is evaluated
        on one device, uncut.
        """
        if self.devices == 1:
            return data
        cut = {split: _cut(getattr(data, split), len(data.splits.labels(split)), batch, self.devices)
               for split in ("train", "val")}
        return dataclasses.replace(data, **cut)

    def describe(self, batch, scale):
        """One line for the log and `recipe.json`: devices, engine, global batch and the learning-rate rule."""
        if self.devices == 1:
            return "devices: 1 (no distribution)"
        rule = (f"learning rates x{scale} (linear scaling: the global batch is {scale} x the single-device one)"
                if scale != 1 else "learning rates as for one device (the global batch was given)")
        return (f"devices: {self.devices} ({self.kind} on {self.backend}), global batch {batch} "
                f"({batch // self.devices} a device), {rule}")


def predict_batch(model, x):
    """`model.predict_on_batch(x)`, right under every plan. Under a tf.distribute strategy of several replicas
    Keras 3.15's `predict_on_batch` gives every replica the whole batch (N times the rows come back), so there
    `predict` splits it; on JAX `predict_on_batch` shards the batch over the DataParallel devices itself."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return model.predict(x, batch_size=len(x), verbose=0)
    return model.predict_on_batch(x)


def _cut(dataset, images, batch, n):
    """A `tf.data.Dataset` of `images` in batches of `batch`, each cut to a multiple of `n` rows (a last
    batch left empty is dropped, and the cardinality kept known)."""
    if dataset is None or images % batch % n == 0:
        return dataset
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    def cut(*parts):
        keep = tf.shape(tf.nest.flatten(parts)[0])[0] // n * n
        return tf.nest.map_structure(lambda part: part[:keep], parts)

    dataset = dataset.map(cut)
    if images % batch < n:  # the last batch is smaller than one image a device
        dataset = dataset.take(images // batch)
    return dataset


def setup_devices(devices="auto", distribution="data_parallel", *, backend=None):
    """Resolves `devices` and `distribution` for the current backend; call it before anything runs on a device.

    Args:
        devices: `"auto"` (one device), `"all"` (every device the backend sees) or a number of devices.
        distribution: `"data_parallel"` (the only one: each device holds the whole model and a slice of the batch).
        backend: the Keras backend (default: the current one).

    Returns:
        A `DataParallel`; its `scope()` must hold building, compiling and fitting the model.

    Example:
    >>> plan = setup_devices("auto")
    >>> plan.devices, plan.kind
    (1, 'single')
    """
    backend = backend or keras.backend.backend()
    check_devices("devices", devices)
    if distribution not in DISTRIBUTIONS:
        raise unknown_name("distribution", distribution, DISTRIBUTIONS)
    multi_host = _num_processes() > 1 or len(_tf_workers()) > 1
    if devices == "auto" and not multi_host:
        return DataParallel(devices=1, backend=backend)
    if backend not in BACKENDS:
        raise KerasTransferError(f"distribution='{distribution}' runs on the jax and tensorflow backends (Keras's "
                                 f"distribution API, tf.distribute); set KERAS_BACKEND to one of them. "
                                 f"Received: backend={backend!r}, devices={devices!r}")
    plan = _setup_jax(devices) if backend == "jax" else _setup_tensorflow(devices)
    log.info("Data-parallel: %d device(s), %s on %s.", plan.devices, plan.kind, backend)
    return plan


def _num_processes():
    try:
        return int(os.environ.get(NUM_PROCESSES, "1"))
    except ValueError:
        raise KerasTransferError(f"{NUM_PROCESSES} must be the number of processes, an integer. "
                                 f"Received: {NUM_PROCESSES}={os.environ[NUM_PROCESSES]!r}") from None


def _too_many(devices, available, hint):
    return KerasTransferError(f"devices={devices} asks for more devices than the {available} this process sees "
                              f"({hint}). Pass devices='all' or a number <= {available}. Received: devices={devices}")


def _setup_jax(devices):
    """`keras.distribution.DataParallel` over the first N devices (of every process, multi-host)."""
    import jax  # lazy: only the JAX backend has (or needs) jax

    if _num_processes() > 1 and not jax.distributed.is_initialized():
        if not os.environ.get(JOB_ADDRESSES):
            raise KerasTransferError(f"A multi-process JAX run needs the coordinator's address in {JOB_ADDRESSES} "
                                     f"(host:port of process 0). Received: {NUM_PROCESSES}={_num_processes()}")
        keras.distribution.initialize()  # jax.distributed.initialize from the three KERAS_DISTRIBUTION_* variables
    available = keras.distribution.list_devices()
    count = len(available) if devices == "all" else devices
    if count > len(available):
        raise _too_many(devices, len(available), "JAX's devices; on a CPU, XLA_FLAGS="
                        f"--xla_force_host_platform_device_count={devices} set before jax is imported makes more")
    if count == 1:
        return DataParallel(devices=1, backend="jax")
    engine = keras.distribution.DataParallel(devices=available[:count])
    return DataParallel(devices=count, backend="jax", engine=engine, kind="keras.distribution.DataParallel")


def _tf_workers():
    text = os.environ.get("TF_CONFIG")
    if not text:
        return []
    try:
        return list(json.loads(text).get("cluster", {}).get("worker", []))
    except (ValueError, AttributeError):
        raise KerasTransferError(f"TF_CONFIG must be JSON with cluster.worker, a list of host:port. "
                                 f"Received: TF_CONFIG={text!r}") from None


def _setup_tensorflow(devices):
    """MirroredStrategy over N GPUs (or N logical CPUs), MultiWorkerMirroredStrategy when TF_CONFIG names workers."""
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    if len(_tf_workers()) > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        count = strategy.num_replicas_in_sync
        if devices not in ("all", "auto", count):
            raise KerasTransferError(f"TF_CONFIG names {len(_tf_workers())} workers, which hold {count} devices in "
                                     f"all: pass devices='all'. Received: devices={devices}")
        return DataParallel(devices=count, backend="tensorflow", engine=strategy, kind="MultiWorkerMirroredStrategy")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = len(gpus) if devices == "all" else devices
        if count > len(gpus):
            raise _too_many(devices, len(gpus), "TensorFlow's GPUs")
        names, reduce = [f"/gpu:{i}" for i in range(count)], None  # None: NCCL all-reduce where it can
    else:  # one reduction device: CPU collectives of two strategies in one process clash over group keys
        count = _logical_cpus() if devices == "all" else devices
        if count > max_cpu_devices():
            raise _too_many(devices, max_cpu_devices(), "logical CPU devices TensorFlow makes without a GPU: at most "
                            "one per core, and 8 on a smaller machine")
        names, reduce = [f"/cpu:{i}" for i in range(_split_cpu(count))], tf.distribute.ReductionToOneDevice()
    if count == 1:
        return DataParallel(devices=1, backend="tensorflow")
    strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=reduce)
    return DataParallel(devices=count, backend="tensorflow", engine=strategy, kind="MirroredStrategy")


def max_cpu_devices():
    """The most logical devices a GPU-less TensorFlow splits its CPU into: a rehearsal of the multi-device path
    (no speed-up), so one per core, and 8 where there are fewer cores (the tests rehearse on 4)."""
    return max(8, os.cpu_count() or 1)


def _logical_cpus():
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    configured = tf.config.get_logical_device_configuration(tf.config.list_physical_devices("CPU")[0])
    return len(configured) if configured else 1


def _split_cpu(count):
    """Splits the host's CPU into `count` logical devices (only before TensorFlow's runtime starts)."""
    import tensorflow as tf  # lazy: under JAX, TensorFlow loads only for a tf.data pipeline or an export

    if _logical_cpus() >= count:
        return count
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise _too_many(count, _logical_cpus(), "logical CPUs; TensorFlow had started, so the CPU can no longer "
                        "be split: set devices before any TensorFlow op, in a fresh process") from None
    return count
