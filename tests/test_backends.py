"""The same user script trains under both backends (each in its own process, as the backend is fixed at import)."""

import os
import subprocess
import sys
import textwrap

import pytest

# backend_free: tests/run.sh runs it once; in its first (TensorFlow) process, which ended about 80 s before the JAX
# one in the CI of 3c65657 (TF 1,025 s, JAX 1,107 s), this test 40 s
pytestmark = [pytest.mark.backend_free, pytest.mark.first_backend]

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


@pytest.mark.slow  # runs both backends in subprocesses itself: backend_free (above), so tests/run.sh runs it once
def test_the_same_user_script_trains_under_both_backends(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    for backend in ("tensorflow", "jax"):  # one after the other: in parallel they are slower on 2 cores
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   KERAS_HOME=str(tmp_path / f"keras_home_{backend}"))
        process = subprocess.run([sys.executable, str(script)], env=env, cwd=str(tmp_path), capture_output=True,
                                 text=True, timeout=300)
        assert process.returncode == 0, f"{backend}:\n{process.stdout}\n{process.stderr[-3000:]}"
        assert f"trained on backend={backend} " in process.stdout, process.stdout
