"""``analyze attention``: atom <-> token weights recomputed from the blocks' projections."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner.analysis.attention import own_element_share
from fusion_tuner.models.fusion import CrossAttention
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


def test_weights_are_a_manual_softmax_and_reproduce_the_output() -> None:
    torch.manual_seed(0)
    attn = CrossAttention(query_dim=5, key_dim=7, dim=8, num_heads=2, dropout=0.3).eval()
    query, keys = torch.randn(3, 4, 5), torch.randn(3, 6, 7)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5]).bool()
    got = attn.weights(query, keys, mask)  # (B, h, Q, K)
    wq, bq = attn.q.weight, attn.q.bias
    wk, bk = attn.kv.weight[:8], attn.kv.bias[:8]  # kv's first half: keys, head-major
    wv, bv = attn.kv.weight[8:], attn.kv.bias[8:]
    with torch.no_grad():
        for b in range(3):
            n = int(mask[b].sum())
            ctx = []
            for h in range(2):
                rows = slice(4 * h, 4 * h + 4)
                q = query[b] @ wq[rows].T + bq[rows]  # (Q, 4)
                k = keys[b, :n] @ wk[rows].T + bk[rows]  # (real K, 4)
                v = keys[b, :n] @ wv[rows].T + bv[rows]
                manual = torch.softmax(q @ k.T / math.sqrt(4), dim=-1)
                torch.testing.assert_close(got[b, h, :, :n], manual, rtol=1e-5, atol=1e-6)
                assert torch.all(got[b, h, :, n:] == 0)  # padding gets no weight
                ctx.append(manual @ v)
            # the forward pass (SDPA) uses exactly these weights
            out = attn.out(torch.cat(ctx, dim=-1))
            torch.testing.assert_close(attn(query, keys, mask)[b], out, rtol=1e-5, atol=1e-6)


def test_own_element_share() -> None:
    w = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7]])
    # atom Na: tokens "na" and "##Na" (case and ## ignored); atom Cl: token "cl"
    got = own_element_share(w, ["Na", "Cl"], ["[CLS]", "na", "##Na", "cl"])
    assert got == pytest.approx(((0.5 + 0.7) / 2, (0.5 + 0.25) / 2))
    assert own_element_share(w, ["Fe", "O"], ["[CLS]", "a", "b", "c"]) is None


def test_attention_maps_of_a_trained_run(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fusion_tuner.analysis.attention import capture
    from fusion_tuner.analysis.runs import datamodule_for
    from fusion_tuner.cli.analyze import main
    from fusion_tuner.rundir import locate

    ids = json.loads((trained_run / "split.json").read_text())["test"][:2]
    out = tmp_path / "att"
    assert main(["attention", "--runs", str(trained_run), "--ids", *ids, "--out", str(out)]) == 0
    summary = json.loads((out / "attention.json").read_text())
    assert [c["id"] for c in summary["crystals"]] == ids
    assert {"fine_grained.atom_to_token", "cross_modal.graph_to_tokens"} <= set(summary["blocks"])
    # the weights of the real model in its forward pass: the block's output is rebuilt from them
    run = locate(trained_run)
    model = run.model.eval()
    dm = datamodule_for(run)
    batch = next(iter(dm.loader(ids, batch_size=2, shuffle=False, num_workers=0)))
    block = model.fine_grained.atom_to_token
    seen = {}
    handle = block.register_forward_hook(lambda m, a, o: seen.update(args=a, out=o))
    weights = capture(model, batch)["fine_grained.atom_to_token"]
    handle.remove()
    _, _, v = block._project(*seen["args"][:2])
    ctx = (weights @ v).transpose(1, 2).reshape(*seen["out"].shape[:2], -1)
    torch.testing.assert_close(block.out(ctx), seen["out"], rtol=1e-4, atol=1e-5)
    n_atoms = torch.bincount(batch.batch).tolist()
    n_tokens = batch.attention_mask.sum(1).tolist()
    for k, cid in enumerate(ids):
        arrays = np.load(out / f"{cid}.npz")
        a2t = arrays["fine_grained__atom_to_token"]
        heads = model.fine_grained.atom_to_token.num_heads
        assert a2t.shape == (heads, n_atoms[k], n_tokens[k])  # real atoms and tokens only
        np.testing.assert_allclose(a2t.sum(-1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(
            a2t, weights[k, :, : n_atoms[k], : n_tokens[k]].numpy(), rtol=1e-6
        )
        assert arrays["tokens"][0] == "[CLS]" and len(arrays["elements"]) == n_atoms[k]
        assert (out / f"{cid}.png").stat().st_size > 10_000
        row = summary["crystals"][k]
        share = own_element_share(a2t.mean(0), list(arrays["elements"]), list(arrays["tokens"]))
        if share is None:
            assert row["own_element_share"] is None
        else:
            assert (row["own_element_share"], row["uniform_share"]) == pytest.approx(share)
    assert ids[0] in capsys.readouterr().out


def test_attention_refuses_graph_only_runs_and_unknown_ids(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fusion_tuner.cli.analyze import main

    code = main(
        ["attention", "--runs", str(trained_run), "--ids", "nope-1", "--out", str(tmp_path)]
    )
    assert code == 2 and "ids not in its data: nope-1" in capsys.readouterr().err
    graph = train_run(tmp_path / "graph", "text=none", "budget.max_epochs=1")
    code = main(["attention", "--runs", str(graph), "--ids", "x", "--out", str(tmp_path / "o")])
    assert code == 2 and "graph-only run (text=none)" in capsys.readouterr().err
