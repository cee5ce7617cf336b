"""What a new user hit: the command that resumes a stopped run, and errors a user causes that
end with their message (exit 2, Ctrl-C 130) and no traceback."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import TINY, run_cli, sweep

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    # started from another folder: import this checkout's package, not an installed one
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _interactive() -> None:
    # Ctrl-C as at a terminal: a suite started in the background (`... &` in a script) hands
    # its children SIGINT ignored, and Python then keeps ignoring it (no KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        preexec_fn=_interactive,
    )


def _wait_for(pattern: str, cwd: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(cwd.glob(pattern))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stdout.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"no {pattern} in time")


def _interrupt(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return out


def test_ctrl_c_prints_the_command_that_resumes_into_the_same_directory(tmp_path: Path) -> None:
    # no hydra.run.dir: the same command would start afresh in a new timestamped folder
    first = [
        sys.executable,
        "-m",
        "fusion_tuner",
        *TINY,
        "scheduler.epochs=3000",
        "scheduler.n_early_stopping=3000",
    ]
    proc = _start(first, tmp_path)
    history = _wait_for("outputs/runs/*/*/history.csv", tmp_path, proc)
    run_dir = history.parent
    while not (run_dir / "last.pt").is_file():
        time.sleep(0.05)
    out = _interrupt(proc)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "HYDRA_FULL_ERROR" not in out, out[-3000:]
    match = re.search(r"to resume, rerun (python -m fusion_tuner .*)$", out, re.M)
    assert match, out[-3000:]
    words = shlex.split(match.group(1))
    assert f"hydra.run.dir={run_dir.resolve()}" in words
    assert set(TINY) | {"scheduler.epochs=3000", "scheduler.n_early_stopping=3000"} <= set(words)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    # the printed command resumes that run (from another working directory, too)
    again = _start([sys.executable, *words[1:]], tmp_path / "outputs")
    deadline = time.time() + 300
    log = run_dir / "train.log"
    while "resumed from last.pt" not in log.read_text() and time.time() < deadline:
        assert again.poll() is None
        time.sleep(0.1)
    _interrupt(again)
    assert "resumed from last.pt" in log.read_text()
    assert len(list((tmp_path / "outputs").glob("runs/*/*/metrics.json"))) == 1  # no new folder


def test_a_wrong_target_column_is_a_message_and_exit_2(
    tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUSION_TUNER_CACHE_DIR", str(tmp_path / "cache"))  # keys not yet known
    store = samples / "jarvis_dft3d_mini" / "store_sample50"
    out = run_cli(
        tmp_path / "run",
        "dataset=jarvis",
        f"dataset.jarvis_dir={store}",
        "dataset.target=band_gapp",
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "dataset.target='band_gapp' is not a numeric key of JARVIS 'dft_3d'" in text
    assert "optb88vdw_bandgap" in text  # the keys it could be
    assert "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    assert text.count("is not a numeric key") == 1


def test_a_wrong_target_of_data_loaded_before_is_refused_before_the_run_directory(
    tmp_path: Path, samples: Path
) -> None:
    from fusion_tuner.data.records import load_jarvis

    store = samples / "jarvis_dft3d_mini" / "store_sample50"
    load_jarvis("dft_3d", "optb88vdw_bandgap", store, 5)  # an earlier run's load
    run_dir = tmp_path / "run"
    wrong = ["dataset=jarvis", f"dataset.jarvis_dir={store}", "dataset.target=band_gapp"]
    out = run_cli(run_dir, *wrong, check=False)
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    assert out.stderr.startswith("error: dataset.target='band_gapp' is not a numeric key")
    assert "optb88vdw_bandgap" in out.stderr
    assert not run_dir.exists()  # refused before Hydra made it, and before the data loaded


def test_a_refused_rerun_of_another_config_is_a_message_and_exit_2(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(run_dir, "scheduler.epochs=1")
    out = run_cli(run_dir, "scheduler.epochs=1", "random_seed=7", check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "holds a completed run of a different config" in text
    assert "Traceback" not in text and "HYDRA_FULL_ERROR" not in text


def test_a_sweep_prints_its_progress_after_each_run(tmp_path: Path) -> None:
    out = sweep(tmp_path / "sw", "random_seed=1,2")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    lines = re.findall(r"sweep progress: .*", text)
    assert len(lines) == 2, text[-3000:]
    assert re.fullmatch(
        r"sweep progress: 1/2 runs done, 0:\d\d:\d\d elapsed, about 0:\d\d:\d\d remaining "
        r"\(estimated from the mean time per run\)",
        lines[0],
    )
    assert re.fullmatch(r"sweep progress: 2/2 runs done, 0:\d\d:\d\d elapsed", lines[1])


def test_ctrl_c_in_a_sweep_prints_the_sweep_command_with_its_directory(tmp_path: Path) -> None:
    args = [*TINY, "scheduler.epochs=3000", "scheduler.n_early_stopping=3000", "random_seed=1,2"]
    proc = _start([sys.executable, "-m", "fusion_tuner", "-m", *args], tmp_path)
    history = _wait_for("outputs/multirun/*/baseline-seed1/history.csv", tmp_path, proc)
    sweep_dir = history.parent.parent
    while not (history.parent / "last.pt").is_file():
        time.sleep(0.05)
    out = _interrupt(proc)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out
    expected = shlex.join(["-m", *args, f"hydra.sweep.dir={sweep_dir.resolve()}"])
    assert f"to resume, rerun python -m fusion_tuner {expected}" in out, out[-3000:]
    assert f"to complete the runs not completed, rerun python -m fusion_tuner {expected}" in out
