"""The same user script trains under both backends (each in its own process, as the backend is fixed at import)."""

import os
import subprocess
import sys
import textwrap

import pytest

# backend_free: each backend's script is its own interpreter, whatever backend the pytest process has; tests/run.sh
# runs the TensorFlow one in its first process and the JAX one in its second (`first_backend` on the parameter), so
# each process starts one interpreter (with both in the first process, it ended 36 s after the second in a CI of
# 2026-12-07, TensorFlow 999 s, JAX 963 s)
pytestmark = pytest.mark.backend_free

SCRIPT = textwrap.dedent("""
    import numpy as np
    import keras
    import keras_transfer as kt
    from keras_transfer.training.presets import compile_model

    x = np.random.default_rng(0).uniform(0, 255, size=(8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    model = kt.build_classifier("vgg16", 3, weights=None, input_size=32, class_names=["a", "b", "c"])
    compile_model(model)
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (8, 3), probabilities.shape
    assert np.isfinite(history.history["loss"][0])
    print(f"trained on backend={keras.backend.backend()} loss={history.history['loss'][0]:.4f}")
""")


@pytest.mark.slow  # a fresh interpreter with a keras.applications network
@pytest.mark.parametrize("backend", [pytest.param("tensorflow", marks=pytest.mark.first_backend), "jax"])
def test_the_same_user_script_trains_under_both_backends(tmp_path, backend):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", KERAS_HOME=str(tmp_path / "keras_home"))
    process = subprocess.run([sys.executable, str(script)], env=env, cwd=str(tmp_path), capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, f"{backend}:\n{process.stdout}\n{process.stderr[-3000:]}"
    assert f"trained on backend={backend} " in process.stdout, process.stdout
