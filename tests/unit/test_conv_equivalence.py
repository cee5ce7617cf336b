"""The edge-gated convolution as the model computes it (stacked projections, the edge gate's
product accumulated by ``addmm``, optionally ``torch.compile``) gives the numbers of the
reference formulation: upstream ALIGNN's ``EdgeGatedGraphConvPure`` arithmetic, written out
term by term below, and upstream's own module on upstream's weights when ``alignn`` is installed.

Tolerance (float32): every loss agrees to a relative 1e-4, and every output and gradient
element within ``1e-4 * max|reference| + 1e-7`` of the reference tensor (the absolute 1e-7
covers gradients that are zero in exact arithmetic, such as attention key biases, and hold only
rounding noise). The formulations differ only in the order of floating-point sums, far below
that, while a wrong term (a swapped projection, a missing bias, the gate on the wrong end of an
edge) is of the order of the values.
"""

from __future__ import annotations

import copy
import types

import pytest
import torch
import torch.nn.functional as F

from fusion_tuner.models.alignn import UPSTREAM_NODE_PROJ, EdgeGatedGraphConv
from fusion_tuner.models.builders import build_model
from fusion_tuner.training.losses import total_loss
from tests.conftest import compose

RTOL, ATOL = 1e-4, 1e-7
DATA = ("dataset.demo_size=40", "text.max_length=48", "arch.hidden_features=64")


def close(actual: torch.Tensor, reference: torch.Tensor) -> bool:
    return torch.allclose(
        actual, reference, rtol=0.0, atol=RTOL * float(reference.abs().max()) + ATOL
    )


def reference_forward(
    conv: EdgeGatedGraphConv, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's ``EdgeGatedGraphConvPure.forward_tensors`` on this module's weights, one
    tensor per term, plus the node dropout this project adds before the residual."""
    src, dst = edge_index
    w, b = conv.node_proj.weight, conv.node_proj.bias
    proj = dict(zip(UPSTREAM_NODE_PROJ, zip(w.chunk(4), b.chunk(4), strict=True), strict=True))
    src_gate, dst_update, dst_gate, src_update = (F.linear(x, *proj[n]) for n in UPSTREAM_NODE_PROJ)
    m = src_gate[src] + dst_gate[dst] + conv.edge_gate(y)
    sigma = torch.sigmoid(m)
    zeros = x.new_zeros((x.size(0), conv.hidden))
    sum_sigma_h = zeros.index_add(0, dst, dst_update[src] * sigma)
    sum_sigma = zeros.index_add(0, dst, sigma)
    x_new = x + conv.dropout(F.silu(conv.norm_nodes(src_update + sum_sigma_h / (sum_sigma + 1e-6))))
    if conv.norm_edges is None:
        return x_new, y
    return x_new, y + F.silu(conv.norm_edges(m))


def as_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose convolutions run :func:`reference_forward`."""
    ref = copy.deepcopy(model)
    for module in ref.modules():
        if isinstance(module, EdgeGatedGraphConv):
            module.forward = types.MethodType(reference_forward, module)
    return ref


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``data(text)``: the data info and three batches of 8 for a ``text=none`` or a fused
    model (each prepared once)."""
    from fusion_tuner import build_datamodule

    cache, prepared = tmp_path_factory.mktemp("conv_cache"), {}

    def get(text: str):
        if text not in prepared:
            dm = build_datamodule(compose(*DATA, f"text={text}", cache=cache))
            prepared[text] = dm.info, list(dm.loader("train", batch_size=8, shuffle=False))[:3]
        return prepared[text]

    return get


def train_steps(model, cfg, batches) -> tuple[list[float], list[dict[str, torch.Tensor]]]:
    """Three AdamW steps with the plan's dropout (the same masks: reseeded per step); the loss
    and every parameter's gradient of each step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses, grads = [], []
    for step, batch in enumerate(batches):
        torch.manual_seed(100 + step)
        loss = total_loss(model(batch), batch.y, model, cfg)
        optimizer.zero_grad()
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        optimizer.step()
    return losses, grads


def assert_same_training(model, reference, cfg, batches) -> None:
    losses, grads = train_steps(model, cfg, batches)
    ref_losses, ref_grads = train_steps(reference, cfg, batches)
    assert losses == pytest.approx(ref_losses, rel=RTOL)
    for step, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
        assert g.keys() == r.keys()
        wrong = [n for n in r if not close(g[n], r[n])]
        assert not wrong, f"step {step + 1}: gradients differ for {wrong}"


@pytest.mark.parametrize("text", ["none", "tiny"], ids=["graph_only", "fused"])
def test_training_steps_match_the_reference_formulation(data, text: str) -> None:
    info, batches = data(text)
    cfg = compose(*DATA, f"text={text}")
    torch.manual_seed(0)
    model = build_model(cfg, info)
    assert_same_training(model, as_reference(model), cfg, batches)


def test_the_reference_formulation_detects_a_swapped_projection(data) -> None:
    """The comparison can fail: exchanging upstream's src_gate and dst_gate blocks (B and A)
    changes the gradients far beyond the tolerance."""
    info, batches = data("none")
    cfg = compose(*DATA, "text=none")
    torch.manual_seed(0)
    model = build_model(cfg, info)
    wrong = as_reference(model)
    conv = wrong.alignn_layers[0].atom_update
    with torch.no_grad():
        w = conv.node_proj.weight.view(4, conv.hidden, -1)
        w[[0, 2]] = w[[2, 0]].clone()
    with pytest.raises(AssertionError, match=r"differ|approx"):
        assert_same_training(model, wrong, cfg, batches)


def test_upstream_weights_load_and_give_upstreams_numbers() -> None:
    pure = pytest.importorskip("alignn.models.alignn_atomwise_pure", reason="alignn not installed")
    torch.manual_seed(0)
    n, e, hidden = 30, 240, 16
    edge_index = torch.randint(0, n, (2, e))  # unsorted, repeated pairs, self loops
    upstream = pure.EdgeGatedGraphConvPure(hidden, hidden)
    ours = EdgeGatedGraphConv(hidden)
    ours.load_upstream(upstream.state_dict())
    x = torch.randn(n, hidden, requires_grad=True)
    y = torch.randn(e, hidden, requires_grad=True)
    probe_x, probe_y = torch.randn(n, hidden), torch.randn(e, hidden)
    outputs = []
    for forward in (ours, lambda x, ei, y: upstream.forward_tensors(ei[0], ei[1], n, x, y)):
        x_new, y_new = forward(x, edge_index, y)
        ((x_new * probe_x).sum() + (y_new * probe_y).sum()).backward()
        outputs.append((x_new.detach(), y_new.detach(), x.grad.clone(), y.grad.clone()))
        x.grad = y.grad = None
    for name, a, b in zip(("x'", "y'", "dx", "dy"), *outputs, strict=True):
        assert close(a, b), name


@pytest.mark.slow
def test_compiled_training_matches_eager_and_keeps_the_checkpoint_names(data, monkeypatch) -> None:
    """``trainer.compile``: the compiled graph encoder trains as the eager one (same losses and
    gradients within the tolerance), builds one graph for training and one for evaluation, and
    leaves the state_dict (what checkpoints hold) unchanged."""
    import torch._inductor.config

    # compiled code draws its dropout masks from inductor's own generator (reproducible per seed,
    # but not eager's masks); fallback_random makes it draw eager's, so the steps are comparable
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    info, batches = data("none")
    cfg = compose(*DATA, "text=none", "trainer.compile=true")
    torch.manual_seed(0)
    eager = build_model(cfg, info)
    compiled = copy.deepcopy(eager)
    compiled.compile_graph_encoder()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert_same_training(compiled, eager, cfg, batches)
    compiled.eval()
    with torch.no_grad():
        compiled(batches[0])
    assert compiled.compile_report().startswith("torch.compile: 2 graph(s) compiled")
    fresh = build_model(cfg, info)
    fresh.load_state_dict(compiled.state_dict())  # strict: the eager model takes its weights
