"""The data module end to end on each source: loaders of batched graphs + text, cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner import build_datamodule
from fusion_tuner.data.demo import generate_demo
from fusion_tuner.errors import DataError
from fusion_tuner.rundir import RunDir
from tests.conftest import compose
from tests.helpers import (
    jarvis_records,
    p1_cif,
    write_cif_folder,
    write_folder,
    write_jarvis_store,
)

pytestmark = pytest.mark.integration


def check_batch(dm, split: str = "train") -> None:
    batch = next(iter(dm.loader(split, batch_size=4)))
    assert batch.num_graphs == 4
    assert batch.input_ids.shape == (4, dm.cfg.text.max_length)
    assert int(batch.edge_index.max()) < batch.num_nodes
    assert int(batch.lg_edge_index.max()) < batch.edge_index.size(1)
    assert batch.bond_length.shape == (batch.edge_index.size(1),)
    assert batch.angle_cos.shape == (batch.lg_edge_index.size(1),)
    assert len(batch.sample_id) == 4 and set(batch.sample_id) <= set(dm.splits[split])


def test_demo_loads_from_cache_on_second_call(tmp_path: Path) -> None:
    cfg = compose("dataset.demo_size=60", "text.max_length=48", cache=tmp_path)
    first = build_datamodule(cfg)
    assert first.report["cache"]["graphs"][1] is False
    second = build_datamodule(cfg)
    assert [hit for _, hit in second.report["cache"].values()] == [True, True, True]
    assert second.splits == first.splits
    assert [len(second.splits[k]) for k in ("train", "val", "test")] == [48, 6, 6]
    check_batch(second)
    # the default k-nearest graph: every atom receives at least 12 bonds, and every bond is
    # there in both directions
    batch = next(iter(second.loader("val", batch_size=6)))
    src, dst = batch.edge_index
    assert int(torch.bincount(dst, minlength=batch.num_nodes).min()) >= 12
    pairs = torch.stack([src, dst], dim=1).tolist()
    assert sorted(pairs) == sorted(torch.stack([dst, src], dim=1).tolist())


def test_changing_a_setting_rebuilds_only_what_depends_on_it(tmp_path: Path) -> None:
    base = ["dataset.demo_size=40", "text.max_length=32"]
    build_datamodule(compose(*base, cache=tmp_path))
    cut = build_datamodule(compose(*base, "dataset.cutoff=6.0", cache=tmp_path)).report["cache"]
    assert (cut["graphs"][1], cut["texts"][1], cut["tokens"][1]) == (False, False, False)
    length = build_datamodule(compose(*base, "text.max_length=40", cache=tmp_path)).report["cache"]
    assert (length["graphs"][1], length["texts"][1], length["tokens"][1]) == (True, True, False)
    seed = build_datamodule(compose(*base, "dataset.split_seed=5", cache=tmp_path))
    assert seed.report["cache"]["graphs"][1] is True  # the split does not touch the graph cache
    pure = build_datamodule(compose(*base, "dataset.neighbor_strategy=pure", cache=tmp_path))
    assert pure.report["cache"]["graphs"][1] is False  # the strategy is part of the graph key
    assert (pure.info.neighbor_strategy, seed.info.neighbor_strategy) == ("pure", "k-nearest")


def test_split_json_is_written_with_ids(tmp_path: Path) -> None:
    dm = build_datamodule(compose("dataset.demo_size=40", "text.max_length=32", cache=tmp_path))
    files = RunDir(tmp_path / "run")
    files.write_split(dm.splits)
    files.write_data_report(dm.report)
    written = json.loads((tmp_path / "run" / "split.json").read_text())
    assert written == dm.splits
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["split_sizes"] == {"train": 32, "val": 4, "test": 4}


def test_jarvis_from_local_cache_with_describe_texts(tmp_path: Path) -> None:
    store = write_jarvis_store(tmp_path / "store", jarvis_records(16))
    cfg = compose(
        "dataset=jarvis",
        f"dataset.jarvis_dir={store}",
        "text.max_length=64",
        "dataset.train_fraction=0.5",
        "dataset.val_fraction=0.25",
        "dataset.test_fraction=0.25",
        cache=tmp_path / "cache",
    )
    dm = build_datamodule(cfg)
    assert dm.report["load"]["missing_target"] == 3
    assert dm.report["n_usable"] == 13
    assert "crystallizes" in dm.tokenizer.decode(dm.datasets["train"][0].input_ids[0])
    check_batch(dm, "train")
    again = build_datamodule(cfg)
    assert all(hit for _, hit in again.report["cache"].values())


def test_folder_source_with_a_broken_file_over_the_drop_limit(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=20, broken=2)
    ok = ["dataset=folder", f"dataset.root={root}", "text.max_length=48"]
    with pytest.raises(DataError, match=r"broken-0\.vasp.*broken-1\.vasp|2 of 22"):
        build_datamodule(compose(*ok, cache=tmp_path / "c"))
    dm = build_datamodule(compose(*ok, "dataset.max_drop_fraction=0.2", cache=tmp_path / "c"))
    assert [i for i, _ in dm.report["dropped"]] == ["broken-0.vasp", "broken-1.vasp"]
    assert dm.report["n_usable"] == 20
    check_batch(dm)


def test_empty_folder_is_an_error_naming_the_source(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "id_prop.csv").write_text("")
    with pytest.raises(DataError, match="no usable crystals"):
        build_datamodule(compose("dataset=folder", f"dataset.root={root}", cache=tmp_path / "c"))


# ------------------------------------------- real JARVIS (the samples bundled with the package)
def test_real_jarvis_sample_with_shipped_texts(samples: Path, tmp_path: Path) -> None:
    store = samples / "jarvis_dft3d_mini" / "store_sample50"
    texts = samples / "jarvis_dft3d_mini" / "describe_text.json.zip"
    cfg = compose(
        "dataset=jarvis",
        f"dataset.jarvis_dir={store}",
        f"dataset.descriptions={texts}",
        "text.source=dataset",
        cache=tmp_path,
    )
    dm = build_datamodule(cfg)
    assert dm.report["n_usable"] == 50
    assert [len(v) for v in dm.splits.values()] == [40, 5, 5]
    check_batch(dm)


def test_real_jarvis_full_store_with_leaderboard_split(samples: Path, tmp_path: Path) -> None:
    mini = samples / "jarvis_dft3d_mini"
    split = (
        samples
        / "jarvis_leaderboard_dft3d"
        / "SinglePropertyPrediction_dft_3d_optb88vdw_bandgap.json.zip"
    )
    cfg = compose(
        "dataset=jarvis",
        f"dataset.jarvis_dir={mini / 'store_full'}",
        f"dataset.descriptions={mini / 'describe_text.json.zip'}",
        f"dataset.split_file={split}",
        cache=tmp_path,
    )
    dm = build_datamodule(cfg)
    missing = dm.report["split_file"]["missing_from_data"]
    assert missing["test"] > 5000  # the mini store holds a small part of the leaderboard ids
    sizes = dm.report["split_sizes"]
    assert (
        sum(sizes.values()) + dm.report["split_file"]["not_in_split_file"] == dm.report["n_usable"]
    )
    assert sizes["test"] > 0 and sizes["val"] > 0
    check_batch(dm, "train")


def test_real_alignn_folder(samples: Path, tmp_path: Path) -> None:
    root = samples / "jarvis_dft3d_alignn_sample50"
    texts = samples / "jarvis_dft3d_mini" / "describe_text.json.zip"
    cfg = compose(
        "dataset=folder", f"dataset.root={root}", f"dataset.descriptions={texts}", cache=tmp_path
    )
    dm = build_datamodule(cfg)
    assert dm.report["n_usable"] == 50 and not dm.report["dropped"]
    check_batch(dm)


def test_featurising_in_worker_processes_gives_identical_graphs(tmp_path: Path) -> None:
    base = ["dataset.demo_size=40", "text.max_length=32"]
    serial = build_datamodule(compose(*base, cache=tmp_path / "a"))
    parallel = build_datamodule(compose(*base, "dataset.num_workers=2", cache=tmp_path / "b"))
    for key in ("z", "edge_index", "r", "atom_ptr", "edge_ptr"):
        assert getattr(serial.graphs, key).equal(getattr(parallel.graphs, key)), key
    assert serial.graphs.ids == parallel.graphs.ids


def test_text_source_describe_replaces_the_datasets_own_text(tmp_path: Path) -> None:
    own = build_datamodule(compose("dataset.demo_size=24", cache=tmp_path))
    desc = build_datamodule(
        compose(
            "dataset.demo_size=24",
            "text.source=describe",
            "text.describe_variant=desc_3",
            cache=tmp_path,
        )
    )
    assert own.report["cache"]["graphs"][0] == desc.report["cache"]["graphs"][0]  # graphs reused
    a = own.tokenizer.decode(own.datasets["train"][0].input_ids[0], skip_special_tokens=True)
    b = desc.tokenizer.decode(desc.datasets["train"][0].input_ids[0], skip_special_tokens=True)
    assert "structure" in a and "spacegroup" in b and a != b


@pytest.mark.parametrize("strategy", ["k-nearest", "pure"])
def test_max_neighbors_sets_the_bonds_per_atom(tmp_path: Path, strategy: str) -> None:
    dm = build_datamodule(
        compose(
            "dataset.demo_size=20",
            "dataset.max_neighbors=6",
            f"dataset.neighbor_strategy={strategy}",
            cache=tmp_path,
        )
    )
    batch = next(iter(dm.loader("train", batch_size=4)))
    received = torch.bincount(batch.edge_index[1], minlength=batch.num_nodes)
    if strategy == "pure":  # exactly the 6 nearest per atom
        assert received.tolist() == [6] * batch.num_nodes
    else:  # at least the 6-th neighbour's shell per atom, plus the reverse bonds
        assert int(received.min()) >= 6 and batch.edge_index.size(1) > 6 * batch.num_nodes


@pytest.mark.parametrize("strategy", ["k-nearest", "pure"])
def test_coincident_sites_and_edgeless_atoms_are_dropped_with_reasons(
    tmp_path: Path, strategy: str
) -> None:
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    root = write_folder(tmp_path / "f", n=20)
    bad = {
        # two sites at the same place of the crystal (fractional 0 and 1)
        "coincident.vasp": Atoms(
            lattice_mat=np.eye(3) * 4.0, coords=[[0, 0, 0], [1, 0, 0]], elements=["Na", "Cl"]
        ),
        # a 30 A cell with two atoms 26 A apart: no neighbour within 8 A
        "isolated.vasp": Atoms(
            lattice_mat=np.eye(3) * 30.0, coords=[[0, 0, 0], [0.5, 0.5, 0.5]], elements=["Na", "Cl"]
        ),
    }
    with (root / "id_prop.csv").open("a") as fh:
        for name, atoms in bad.items():
            Poscar(atoms).write_file(str(root / name))
            fh.write(f"{name},1.0\n")
    dm = build_datamodule(
        compose(
            "dataset=folder",
            f"dataset.root={root}",
            "dataset.max_drop_fraction=0.2",
            f"dataset.neighbor_strategy={strategy}",
            cache=tmp_path / "c",
        )
    )
    RunDir(tmp_path / "run").write_data_report(dm.report)
    dropped = dict(json.loads((tmp_path / "run" / "data_report.json").read_text())["dropped"])
    assert "sites 0 and 1 (its periodic image" in dropped["coincident.vasp"]
    if strategy == "pure":
        assert "have no neighbour within 8 A" in dropped["isolated.vasp"]
        assert dm.report["n_usable"] == 20
    else:  # the radius grows to 30 A: both atoms get bonds
        assert "isolated.vasp" not in dropped and dm.report["n_usable"] == 21


def test_hub_text_model_offline_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="text=tiny"):
        build_datamodule(compose("dataset.demo_size=20", "text=matscibert", cache=tmp_path))


# ------------------------------------------------------------------------------ table source
def _write_table(path: Path, n: int, target=lambda i, c: round(c.target, 5)) -> Path:
    rows = [
        {"mid": f"m-{i}", "structure": p1_cif(c.lattice, c.cart, c.elements), "y": target(i, c)}
        for i, c in enumerate(generate_demo(n, 8))
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_table_source_end_to_end_and_its_cache_key(tmp_path: Path) -> None:
    path = _write_table(tmp_path / "t.jsonl", 24)
    cfg = compose(
        "dataset=table",
        f"dataset.path={path}",
        "dataset.target=y",
        "dataset.id_column=mid",
        "text.max_length=48",
        cache=tmp_path / "c",
    )
    dm = build_datamodule(cfg)
    assert dm.report["load"]["structure_kinds"] == {"cif": 24}
    assert dm.report["n_usable"] == 24 and set(dm.graphs.ids) == {f"m-{i}" for i in range(24)}
    check_batch(dm)
    assert all(hit for _, hit in build_datamodule(cfg).report["cache"].values())
    _write_table(path, 24, target=lambda i, c: i)  # same name, new content: a new graph entry
    changed = build_datamodule(cfg)
    assert changed.report["cache"]["graphs"][1] is False
    assert sorted(changed.graphs.targets.tolist()) == list(range(24))


def test_constant_target_fails_before_training_naming_it(tmp_path: Path) -> None:
    path = _write_table(tmp_path / "t.jsonl", 20, target=lambda i, c: 1.25)
    cfg = compose("dataset=table", f"dataset.path={path}", "dataset.target=y", cache=tmp_path)
    constant = r"dataset\.target='y' is constant on the 16 training crystals \(every value is 1\.25"
    with pytest.raises(DataError, match=constant):
        build_datamodule(cfg)


def test_duplicate_ids_are_refused_by_default_and_first_keeps_one(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=20)
    rows = (root / "id_prop.csv").read_text().splitlines()
    name = rows[3].split(",")[0]
    (root / "id_prop.csv").write_text("\n".join([*rows, f"{name},7.5"]) + "\n")
    base = ["dataset=folder", f"dataset.root={root}", "text.max_length=48"]
    with pytest.raises(DataError, match=rf"1 ids occur more than once .*{name} \(targets"):
        build_datamodule(compose(*base, cache=tmp_path / "c"))
    dm = build_datamodule(compose(*base, "dataset.duplicates=first", cache=tmp_path / "c"))
    assert dm.report["n_usable"] == 20
    assert dm.report["load"]["duplicates"] == {"policy": "first", "duplicated_ids": 1, "dropped": 1}
    dropped = build_datamodule(compose(*base, "dataset.duplicates=drop", cache=tmp_path / "c"))
    assert dropped.report["n_usable"] == 19 and name not in dropped.graphs.ids


def test_featurising_a_cif_folder_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    root = write_cif_folder(tmp_path / "cifs", n=16)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # every mkstemp of this process
    monkeypatch.setenv("TMPDIR", str(scratch))  # and of any child
    dm = build_datamodule(compose("dataset=folder", f"dataset.root={root}", cache=tmp_path / "c"))
    assert dm.report["n_usable"] == 16 and dm.report["load"]["structure_kinds"] == {"cif": 16}
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_real_perovskite_table(samples: Path, tmp_path: Path) -> None:
    path = samples / "perov5_castelli" / "perov5_val.csv.zip"
    cfg = compose(
        "dataset=table",
        f"dataset.path={path}",
        "dataset.structure_column=cif",
        "dataset.id_column=material_id",
        "dataset.target=heat_ref",
        "dataset.limit=40",
        "text.max_length=64",
        cache=tmp_path,
    )
    dm = build_datamodule(cfg)
    load = dm.report["load"]
    assert (load["n_raw"], load["limited"], load["structure_kinds"]) == (3787, 3747, {"cif": 40})
    assert dm.report["n_usable"] == 40 and not dm.report["dropped"]
    assert all(int(dm.graphs.atom_ptr[i + 1] - dm.graphs.atom_ptr[i]) == 5 for i in range(40))
    check_batch(dm)
