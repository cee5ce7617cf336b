"""The faults a drill found, each reproduced: typos added with '+', two processes in one run
directory, poisoned caches, corrupt checkpoints, SIGTERM, partial files, a full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fusion_tuner import build_datamodule
from fusion_tuner.checkpoint import load_checkpoint
from fusion_tuner.cli import main
from fusion_tuner.errors import CheckpointError, ConfigError
from tests.conftest import compose
from tests.helpers.cli import TINY, in_process, run_cli

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "fusion_tuner"]


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m fusion_tuner ARGS...`` run in this process (refusals and ``--help`` need no
    training, so no new interpreter; ``test_a_typo_exits_2_from_a_real_process`` checks one
    refusal through a real process)."""
    return in_process(main, *args)


def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, f"hydra.run.dir={run_dir}", *TINY, *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_epochs(proc: subprocess.Popen, run_dir: Path, epochs: int) -> None:
    history, deadline = run_dir / "history.csv", time.time() + 300
    while time.time() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) > epochs:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stdout.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("the run did not reach the epoch in time")


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def owner_files(run_dir: Path) -> dict[str, bytes]:
    """The bytes of what a refused process must leave alone: Hydra's record and the metrics."""
    paths = [*sorted((run_dir / ".hydra").iterdir()), run_dir / "metrics.json"]
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in paths}


# ---------------------------------------------------------------------- 1: typos with '+'
@pytest.mark.parametrize(
    "args",
    [
        ["+regularization.graph_droput=0.3"],
        ["regularization.graph_droput=0.3"],
        ["-m", "+regularization.graph_droput=0.0,0.9"],
    ],
)
def test_unknown_keys_are_refused_with_or_without_plus(tmp_path: Path, args: list[str]) -> None:
    out = cli(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert out.returncode == 2
    assert "unknown key 'regularization.graph_droput'" in out.stderr
    assert "did you mean regularization.graph_dropout" in out.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["budget=quik"], "Could not find 'budget/quik'"),
        (["-m", "budget=quik"], "Could not find 'budget/quik'"),
        (["hydra/launcher=locl"], "Could not find 'hydra/launcher/locl'"),
        (["scheduler.epochs=abc"], "could not be converted to Integer"),
        (["-m", "random_seed=1,x"], "could not be converted to Integer"),
        (["hydra.run.dirr=x"], "Key 'dirr' not in 'RunDir'"),
        (["budget.max_epochs"], "Error parsing override 'budget.max_epochs'"),
    ],
)
def test_every_kind_of_typo_exits_2(tmp_path: Path, args: list[str], said: str) -> None:
    out = cli(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert said in out.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_a_typo_exits_2_from_a_real_process(tmp_path: Path) -> None:
    out = subprocess.run(
        [*CLI, "+regularization.graph_droput=0.3", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert "did you mean regularization.graph_dropout" in out.stderr
    assert not (tmp_path / "run").exists()


def test_compose_config_refuses_added_typos() -> None:
    with pytest.raises(ConfigError, match=r"did you mean regularization\.graph_dropout"):
        compose("+regularization.graph_droput=0.3")


def test_argparse_habits_get_a_hint() -> None:
    out = cli("--budget", "quick")
    assert out.returncode == 2 and "did you mean budget=quick?" in out.stderr


def test_help_describes_groups_and_options() -> None:
    out = cli("--help")
    assert out.returncode == 0
    assert "regularization: plan tier 1" in out.stdout
    assert "Plan experiment 1: conservative regularization." in out.stdout
    assert "sets regularization.graph_dropout=0.2" in out.stdout


def test_analyze_help_has_no_markup() -> None:
    from fusion_tuner.cli.analyze import main as analyze_main

    out = in_process(analyze_main, "--help")
    assert out.returncode == 0 and "``" not in out.stdout


# ------------------------------------------------------- 2: two processes, one directory
@pytest.mark.e2e
@pytest.mark.parametrize("second", [[], ["regularization.graph_dropout=0.3"]])
def test_a_second_process_in_a_live_run_directory_is_refused(
    tmp_path: Path, second: list[str]
) -> None:
    run_dir = tmp_path / "run"
    first = start(run_dir, "scheduler.epochs=500")  # still training when the second comes
    wait_for_epochs(first, run_dir, 1)
    digest = metrics(run_dir)["config_hash"]
    hydra_before = {k: v for k, v in owner_files(run_dir).items() if k.startswith(".hydra/")}
    assert set(hydra_before) == {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
    out = run_cli(run_dir, "scheduler.epochs=500", *second, check=False)
    assert out.returncode != 0
    assert f"is in use by another live run (pid {first.pid} on host" in out.stdout + out.stderr
    assert first.poll() is None  # the owner trains on, untouched
    hydra_after = {k: v for k, v in owner_files(run_dir).items() if k.startswith(".hydra/")}
    assert hydra_after == hydra_before  # Hydra's record of the owner is not rewritten
    m = metrics(run_dir)
    assert (m["status"], m["config_hash"]) == ("running", digest)
    assert [a["action"] for a in m["attempts"]] == ["fresh"]
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)


@pytest.mark.e2e
def test_the_lock_of_a_killed_run_does_not_block_its_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, "scheduler.epochs=4")
    wait_for_epochs(proc, run_dir, 1)
    deadline = time.time() + 120
    while not (run_dir / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.02)  # history.csv is written just before last.pt
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run_dir / ".lock").is_file()  # left behind, but no live process holds it
    assert metrics(run_dir)["status"] == "running" and (run_dir / "last.pt").is_file()
    before = owner_files(run_dir)
    other = run_cli(run_dir, "scheduler.epochs=4", "random_seed=7", check=False)
    assert other.returncode != 0  # another config cannot resume it, and touches nothing
    assert "holds an unfinished run of a different config" in other.stdout + other.stderr
    assert "trainer.start_over=true" in other.stdout + other.stderr
    assert owner_files(run_dir) == before
    resumed = run_cli(run_dir, "scheduler.epochs=4")
    # the stale 'running' (no live owner: SIGKILL, or a full disk) is reported as interrupted
    stale = f"interrupted: metrics.json still said 'running' but no live process owned the run (pid {proc.pid})"
    assert f"the previous attempt was {stale}" in resumed.stdout + resumed.stderr
    m = metrics(run_dir)
    assert m["status"] == "completed"
    assert m["attempts"][0]["ended"].startswith(stale)
    assert [a["action"] for a in m["attempts"]] == ["fresh", "resumed after interruption"]


@pytest.mark.e2e
def test_a_refused_rerun_of_a_completed_run_leaves_its_files_untouched(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli(run_dir, "scheduler.epochs=1")
    before = owner_files(run_dir)
    out = run_cli(
        run_dir, "scheduler.epochs=1", "random_seed=7", "scheduler.learning_rate=0.5", check=False
    )
    assert out.returncode != 0
    assert "holds a completed run of a different config" in out.stdout + out.stderr
    assert owner_files(run_dir) == before  # .hydra/config.yaml still says seed 42, lr as run
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "random_seed: 42" in config and "learning_rate: 0.5" not in config
    assert "random_seed=7" not in (run_dir / ".hydra" / "overrides.yaml").read_text()


# ------------------------------------------------------------------ 3: poisoned caches
@pytest.mark.parametrize("kind", ["graphs", "texts", "tokens"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_content"])
def test_a_corrupt_cache_entry_is_set_aside_and_rebuilt(
    tmp_path: Path, kind: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose("dataset.demo_size=30", "text.max_length=32", cache=tmp_path)
    good = build_datamodule(cfg)
    (entry,) = (tmp_path / "features").glob(f"{kind}-*.pt")
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\x00garbage" * 64)
    else:
        torch.save({"something": torch.zeros(3)}, entry)
    with caplog.at_level("WARNING"):
        again = build_datamodule(cfg)
    assert again.report["cache"][kind][1] is False  # rebuilt
    assert again.graphs.ids == good.graphs.ids
    assert again.tokens["token_ids"].equal(good.tokens["token_ids"])
    assert f"cache entry {entry} is unusable" in caplog.text
    assert list(entry.parent.glob(f"{entry.name}.corrupt-*"))
    assert "weights_only=False" not in caplog.text
    assert build_datamodule(cfg).report["cache"][kind][1] is True  # healed for later runs


def test_a_corrupt_cached_tokenizer_is_retrained(tmp_path: Path) -> None:
    cfg = compose("dataset.demo_size=30", "text.max_length=32", cache=tmp_path)
    good = build_datamodule(cfg)
    (tok,) = (tmp_path / "tokenizers").glob("wordpiece-*/tokenizer.json")
    tok.write_text("{not json")
    again = build_datamodule(cfg)
    assert len(again.tokenizer) == len(good.tokenizer) > 100
    assert list((tmp_path / "tokenizers").glob("wordpiece-*.corrupt-*"))


# --------------------------------------------------------------- 5: corrupt checkpoints
def _checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.pt"
    torch.save({"model_state": {}, "config": {}}, good)
    raw = good.read_bytes()
    out = {"truncated": tmp_path / "truncated.pt", "garbage": tmp_path / "garbage.pt"}
    out["truncated"].write_bytes(raw[: len(raw) // 2])
    out["garbage"].write_bytes(b"\x80\x04garbage" * 50)
    return out


def test_corrupt_checkpoints_are_named_and_never_loaded_unsafely(tmp_path: Path) -> None:
    for kind, path in _checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and "truncated or corrupt" in str(err.value), kind
        assert "weights_only" not in str(err.value)


@pytest.mark.e2e
def test_resume_falls_back_to_the_previous_epoch_then_offers_start_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start(run_dir, "scheduler.epochs=5")
    wait_for_epochs(proc, run_dir, 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (run_dir / "last.prev.pt").is_file()
    (run_dir / "last.pt").write_bytes(b"garbage")
    out = run_cli(run_dir, "scheduler.epochs=5")
    assert "resuming from last.prev.pt" in out.stdout + out.stderr
    assert metrics(run_dir)["status"] == "completed"
    rows = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4, 5]

    broken = tmp_path / "broken"
    proc = start(broken, "scheduler.epochs=5")
    wait_for_epochs(proc, broken, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for name in ("last.pt", "last.prev.pt"):
        (broken / name).write_bytes(b"garbage")
    out = run_cli(broken, "scheduler.epochs=5", check=False)
    assert out.returncode != 0
    assert "trainer.start_over=true" in out.stdout + out.stderr
    assert "weights_only" not in out.stdout + out.stderr
    out = run_cli(broken, "scheduler.epochs=5", "trainer.start_over=true")
    assert metrics(broken)["status"] == "completed" and metrics(broken)["epochs_run"] == 5


# ------------------------------------------------------------------ 6: signals, endings
@pytest.mark.e2e
def test_sigterm_records_an_interruption_and_the_rerun_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # 40 epochs of ~0.15 s: the signal lands while it trains even when this process is slow
    # to see epoch 2 (a loaded CI machine)
    proc = start(run_dir, "scheduler.epochs=40")
    wait_for_epochs(proc, run_dir, 2)  # history comes first: epoch 1's last.pt exists by now
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    assert code == 128 + signal.SIGTERM, proc.stdout.read()[-3000:]
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and m["reason"] == "interrupted by SIGTERM"
    assert (run_dir / "last.pt").is_file()
    assert "interrupted by SIGTERM" in (run_dir / "train.log").read_text()
    run_cli(run_dir, "scheduler.epochs=40")
    actions = [a["action"] for a in metrics(run_dir)["attempts"]]
    assert actions == ["fresh", "resumed after interruption"]


def test_a_sigterm_that_surfaces_as_an_import_error_is_still_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM while matplotlib's C extension initialises (a run's first plot) surfaces as
    # "ImportError: initialization failed" raised from the handler's Interrupted: CI saw exit 1
    # and a run marked failed instead of 143 and "interrupted"
    from fusion_tuner.training import trainer
    from fusion_tuner.training.run import Interrupted, train

    def plot_interrupted(*args: object, **kwargs: object) -> None:
        try:
            raise Interrupted(signal.SIGTERM)
        except Interrupted as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(trainer, "plot_curves", plot_interrupted)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train(compose(*TINY, "scheduler.epochs=2"), run_dir)
    assert stopped.value.code == 128 + signal.SIGTERM
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and m["reason"] == "interrupted by SIGTERM"
    assert "interrupted by SIGTERM; last.pt is kept" in (run_dir / "train.log").read_text()


@pytest.mark.e2e
def test_partial_files_of_killed_writes_are_removed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = [run_dir / ".last.pt.k3j2.tmp", run_dir / ".history.csv.x9.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    (run_dir / ".tokenizer.abc.tmp").mkdir()
    run_cli(run_dir, "scheduler.epochs=1")
    assert not any(p.exists() for p in stale)
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.e2e
def test_history_never_lacks_an_epoch_its_checkpoint_claims(tmp_path: Path) -> None:
    # A kill after history.csv is written but before last.pt: history has one row too many.
    run_dir = tmp_path / "run"
    proc = start(run_dir, "scheduler.epochs=4")
    wait_for_epochs(proc, run_dir, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # a kill between the two renames of _save_last leaves only last.prev.pt
    kept = next(p for p in (run_dir / "last.pt", run_dir / "last.prev.pt") if p.is_file())
    saved = torch.load(kept, weights_only=True)["epoch"]
    lines = (run_dir / "history.csv").read_text().splitlines()
    (run_dir / "history.csv").write_text("\n".join([*lines, lines[-1]]) + "\n")  # a ghost row
    run_cli(run_dir, "scheduler.epochs=4")
    rows = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4]
    assert saved >= 1


# ------------------------------------------------------------------ 7: a user's things
@pytest.mark.e2e
def test_only_best_model_stays_unless_asked(tmp_path: Path) -> None:
    plain, keep = tmp_path / "plain", tmp_path / "keep"
    run_cli(plain, "scheduler.epochs=2")
    run_cli(keep, "scheduler.epochs=2", "trainer.keep_last_checkpoint=true")
    assert (plain / "best_model.pt").is_file() and not (plain / "last.pt").exists()
    assert not (plain / "last.prev.pt").exists()
    assert (keep / "last.pt").is_file()
    out = run_cli(plain, "scheduler.epochs=2")  # a completed run is still only reported
    assert "already complete" in out.stdout + out.stderr
    assert not (plain / "fusion_tuner.log").exists()  # one log per run: train.log
    assert "epoch 2/2" in (plain / "train.log").read_text()


def test_a_diverging_run_says_so_naming_the_epoch_and_the_knob(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run_cli(
        run_dir,
        "scheduler.epochs=3",
        "scheduler.optimizer=sgd",
        "scheduler.learning_rate=1e30",
        check=False,
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "best_model.pt not found" not in text
    assert "the run diverged: validation MAE is nan at epoch 1" in text
    assert "lower scheduler.learning_rate (now 1e+30 with scheduler.optimizer=sgd" in text
    m = metrics(run_dir)
    assert m["status"] == "failed" and m["error"].startswith("Diverged: the run diverged")
    assert len((run_dir / "history.csv").read_text().splitlines()) == 2  # stopped at epoch 1


@pytest.mark.e2e
def test_a_last_checkpoint_that_does_not_fit_the_model_offers_start_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ("scheduler.epochs=1", "trainer.keep_last_checkpoint=true")
    run_cli(run_dir, *args)
    state = torch.load(run_dir / "last.pt", weights_only=True)
    dropped = sorted(state["model_state"])[0]
    del state["model_state"][dropped]  # as after a change of the model's code
    torch.save(state, run_dir / "last.pt")
    m = metrics(run_dir)
    (run_dir / "metrics.json").write_text(json.dumps(m | {"status": "interrupted"}))
    out = run_cli(run_dir, *args, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"cannot resume from {run_dir / 'last.pt'}: it does not fit" in text
    assert f'Missing key(s) in state_dict: "{dropped}"' in text
    assert "Rerun with trainer.start_over=true" in text
    again = run_cli(run_dir, *args, "trainer.start_over=true")  # the advice works
    assert "removing" in again.stdout + again.stderr and metrics(run_dir)["status"] == "completed"
