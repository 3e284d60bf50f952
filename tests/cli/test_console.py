"""A clean console: TensorFlow's C++ log lines (and LiteRT's) stay hidden unless -v/--verbose or
TF_CPP_MIN_LOG_LEVEL asks, and `cdseg info` answers without starting TensorFlow."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from cdseg.native_logs import keeps

NATIVE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]|absl::InitializeLog", re.M)


def _cdseg(*args, env=None, timeout=180):
    script = shutil.which("cdseg")
    assert script, "the console script `cdseg` is not installed (pip install -e .)"
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env or {})
    start = time.perf_counter()
    result = subprocess.run([script, *args], capture_output=True, text=True, timeout=timeout, env=environment)
    return result, time.perf_counter() - start


@pytest.mark.parametrize(
    "line, level, shown",
    [
        (b"I0000 00:00:1796527501.353530    6342 port.cc:153] oneDNN custom operations are on.\n", 3, False),
        (b"E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit\n", 3, False),
        (b"E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit\n", 2, True),
        (b"W0000 00:00:1796527504.761841    6342 x.cc:1] a warning\n", 2, False),
        (b"F0000 00:00:1796527504.761841    6342 x.cc:1] a crash\n", 3, True),
        (b"2024-05-01 10:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] AVX2\n", 1, False),
        (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", 1, False),
        (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", 0, True),
        (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", 3, False),
        (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", 0, True),
        (b"Error: scan.nii.gz: input not found\n", 3, True),
        (b"UserWarning: something Python said\n", 3, True),
    ],
)
def test_only_cpp_log_lines_below_the_level_are_dropped(line, level, shown):
    assert keeps(line, level) is shown


def test_captured_stderr_keeps_our_lines_in_order_and_drops_cpp_lines():
    # A child writes C++-style lines straight to file descriptor 2, as TensorFlow's libraries do.
    code = (
        "import os, sys\n"
        "from cdseg.native_logs import filtered_stderr\n"
        "with filtered_stderr(3):\n"
        "    print('ours 1', file=sys.stderr)\n"
        "    os.write(2, b'I0000 00:00:1796527501.353530    6342 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "    os.write(2, b'E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit\\n')\n"
        "    print('ours 2', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["ours 1", "ours 2", "after"]


def test_info_answers_without_tensorflow_in_well_under_a_second():
    result, seconds = _cdseg("info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["tensorflow"] and info["keras"].startswith("3.") and info["keras_backend"]
    assert info["data_config"]["context"] == 1 and isinstance(info["nvidia_driver_gpus"], list)
    assert result.stderr == ""
    # Generous for a shared CI machine; what it proves is the next assertion: TensorFlow is never imported.
    assert seconds < 5.0, f"`cdseg info` took {seconds:.2f} s"
    code = "import sys; from cdseg.main import cli\ntry:\n    cli(['info'])\nexcept SystemExit:\n    pass\nprint('tensorflow' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().splitlines()[-1] == "False", probe.stdout + probe.stderr


@pytest.mark.parametrize("user_level, expected", [
    (None, ["ours"]),
    ("3", ["ours"]),
    ("1", ["ours", "E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit"]),
    ("0", ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
           "I0000 00:00:1796527501.353530    6342 port.cc:153] oneDNN custom operations are on.", "ours",
           "E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit"]),
])  # fmt: skip
def test_the_first_tensorflow_import_is_filtered_at_the_users_level(tmp_path, user_level, expected):
    # A stand-in package named tensorflow whose import writes what TensorFlow's static initializers write, so
    # the import hook is checked in a fraction of a second; the real TensorFlow is checked below.
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os, sys\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1796527501.353530    6342 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "print('ours', file=sys.stderr)\n"
        "os.write(2, b'E0000 00:00:1796527504.761841    6342 cuda_platform.cc:52] failed call to cuInit\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if user_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = user_level
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    code = "from cdseg import native_logs; native_logs.install(); import tensorflow, os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == expected
    assert result.stdout.strip() == (user_level or "3")  # what TensorFlow reads for the lines after its import


def test_tensorflow_commands_print_only_our_lines_unless_asked():
    result, _ = _cdseg("info", "--devices")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["training_strategy"]["kind"] in ("default", "mirrored", "multiworker")
    assert info["gpus"] == [] or all("name" in gpu for gpu in info["gpus"])
    assert not NATIVE_LINE.search(result.stderr), result.stderr
    shown, _ = _cdseg("info", "--devices", "-v")
    assert shown.returncode == 0, shown.stderr
    if not NATIVE_LINE.search(shown.stderr):
        pytest.skip("TensorFlow wrote no C++ log line on this machine, so there is nothing to hide")
    assert json.loads(shown.stdout)["training_strategy"] == info["training_strategy"]
