"""What training runs on, for whichever Keras backend `KERAS_BACKEND` names (TensorFlow by default): the
accelerators it sees, the precision policy and the multi-device strategy.

Each backend is asked through its own API, imported only when it is the backend: under JAX or PyTorch,
TensorFlow is never imported.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Accelerators:
    """The GPUs the backend sees, and their smallest CUDA compute capability (major, minor)."""

    count: int
    capability: tuple[int, int] | None = None

    @property
    def bfloat16(self) -> bool:
        """bfloat16 matrix units: NVIDIA Ampere (8.0) and later."""
        return self.capability is not None and self.capability >= (8, 0)


def backend() -> str:
    return keras.backend.backend()


def uses_tf_data() -> bool:
    """Whether training reads through `tf.data` (the TensorFlow backend) or through `model.loader`'s PyDataset."""
    return backend() == "tensorflow"


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"TensorFlow is not used with the {backend()} backend", name=name)
        return None


def without_tensorflow() -> None:
    """On a backend other than TensorFlow, make this process train as where TensorFlow is not installed.

    Keras imports TensorFlow wherever it is installed, whatever the backend: `keras.utils.set_random_seed` seeds it and
    `Model.save` checks for its shapes. That costs seconds and hundreds of MB, and hides a dependency that the GPU
    machine (JAX, no TensorFlow) lacks: an import of it then fails as it would there. No effect once TensorFlow
    is imported, or on its own backend."""
    if uses_tf_data() or "tensorflow" in sys.modules or any(isinstance(f, _NoTensorFlow) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _NoTensorFlow())


def accelerators() -> Accelerators:
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        details = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
    elif name == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        details = [tuple(int(p) for p in str(d.compute_capability).split(".")) for d in gpus]
    elif name == "torch":
        import torch

        gpus = list(range(torch.cuda.device_count()))
        details = [torch.cuda.get_device_capability(g) for g in gpus]
    else:
        return Accelerators(0)
    known = [tuple(d) for d in details if d]
    return Accelerators(len(gpus), min(known) if known else None)


def precision_policy(mixed_precision: bool, devices: Accelerators) -> str:
    """Keras' dtype policy: bfloat16 compute on a GPU that has it (float32's range: no loss scaling), float16
    on an older GPU, float32 on the CPU (where mixed precision is slower)."""
    if not mixed_precision or devices.count == 0:
        return "float32"
    return "mixed_bfloat16" if devices.bfloat16 else "mixed_float16"


def data_parallel(setting: bool | None, devices: Accelerators) -> bool:
    """Whether to split each batch over devices: `setting` when given, else when more than one GPU is seen."""
    return devices.count > 1 if setting is None else setting


def distribution_scope(parallel: bool):
    """A context in which the model is built and compiled: data parallel over every device of the backend
    (TensorFlow's MirroredStrategy; Keras' distribution API on JAX), or the default placement.

    PyTorch's backend has no multi-device `fit` in Keras: it trains on one device."""
    if not parallel:
        return contextlib.nullcontext()
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    if name == "jax":
        return _jax_distribution()
    raise ValueError(f"data_parallel training is not available on the {name} backend: leave data_parallel unset")


@contextlib.contextmanager
def _jax_distribution():
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)
