"""Device selection: the multi-device path (MirroredStrategy) on a CPU split into two logical devices.

Logical devices must be configured before TensorFlow initialises, so each
check runs in a fresh Python process.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from playground.training.devices import DeviceInfo


def _run(code: str, tmp_path) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PLAYGROUND_RUNS_DIR": str(tmp_path / "runs"),
           "PLAYGROUND_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh TensorFlow process and a short real training: about 15 s
def test_training_spreads_over_two_logical_cpus(tmp_path):
    out = _run(
        """
        import json
        from playground.training import devices
        devices.split_cpu(2)
        from playground.data import datasets
        from playground.training import loop as training
        from playground.spec.experiment import ExperimentSpec
        spec = ExperimentSpec().with_values(dataset="shapes", sample_size=256, filters="4,8", dense_units="16",
                                            epochs=2, batch_size=32, validation_split=0.0)
        strategy = devices.training_strategy()
        result = training.train(spec, datasets.load_for_spec(spec))
        print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                          "describe": devices.device_info().describe(), "loss": result.history["loss"],
                          "accuracy": result.test_accuracy}))
        """,
        tmp_path,
    )
    assert out["strategy"] == "MirroredStrategy" and out["replicas"] == 2
    assert out["describe"] == "CPU split into 2 devices (MirroredStrategy)"
    assert len(out["loss"]) == 2 and all(v == v for v in out["loss"])  # two finite epochs
    assert 0.0 <= out["accuracy"] <= 1.0


def test_one_cpu_uses_the_default_strategy_and_float32(tmp_path):
    out = _run(
        """
        import json
        import keras
        from playground.training import devices
        on = devices.use_mixed_precision()
        print(json.dumps({"strategy": type(devices.training_strategy()).__name__, "mixed": on,
                          "policy": keras.mixed_precision.global_policy().name,
                          "describe": devices.device_info().describe()}))
        """,
        tmp_path,
    )
    assert out["mixed"] is False and out["policy"] == "float32"
    assert out["strategy"] != "MirroredStrategy"
    assert out["describe"] == "CPU"


def test_describe_names_gpus_and_precision():
    assert DeviceInfo(gpus=("g0",), replicas=1, mixed_precision=True).describe() == "1 GPU, mixed precision"
    assert DeviceInfo(gpus=("g0", "g1"), replicas=2, mixed_precision=False).describe() == "2 GPUs (MirroredStrategy)"


def test_split_cpu_refuses_zero():
    from playground.training import devices

    with pytest.raises(ValueError, match="count=0"):
        devices.split_cpu(0)
