"""ALIGNN graph encoder in plain PyTorch (no DGL): edge-gated convolutions on the atom graph
and on its line graph (Choudhary & DeCost, npj Comput. Mater. 7, 185 (2021)).

Shapes: N atoms, E bonds, T bond pairs (line-graph edges), H = hidden_features.
Messages flow ``edge_index[0] -> edge_index[1]`` and are aggregated at the target, as upstream's
DGL model aggregates at each edge's destination; on the line graph, edge ``a -> b`` (bonds
``a = (u -> v)``, ``b = (v -> w)``) is aggregated at bond ``b`` (see ``data/graphs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``src`` (M, C) into ``size`` buckets given by ``index`` (M,)."""
    out = src.new_zeros((size, src.size(1)))
    return out.scatter_add_(0, index.unsqueeze(-1).expand_as(src), src)


@torch.library.custom_op("fusion_tuner::index_add_rows", mutates_args=())
def index_add_rows(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """``zeros(size, C).index_add_(0, index, src)``, opaque to ``torch.compile``: compiled
    code calls ATen's kernel instead of generating a loop of atomic adds, which on a CPU is
    several times slower for the (E, H) gradients of the gathers."""
    return src.new_zeros((size, src.size(1))).index_add_(0, index, src)


@index_add_rows.register_fake
def _index_add_rows_shape(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    return src.new_empty((size, src.size(1)))


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, index)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, index = inputs
        ctx.save_for_backward(index)
        ctx.rows = x.size(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        return index_add_rows(grad, index, ctx.rows), None


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x.index_select(0, index)``: compiled code fuses the gather into what reads it, and
    its backward, a sum of rows into ``x``'s shape, runs ATen's ``index_add_``
    (:func:`index_add_rows`)."""
    return _GatherRows.apply(x, index)


class RBFExpansion(nn.Module):
    """Gaussian radial basis expansion of a scalar on ``bins`` centres over [vmin, vmax].

    Upstream ALIGNN's ``RBFExpansion`` (alignn ``models/utils.py``) as every ALIGNN model calls
    it (no ``lengthscale``): ``exp(-gamma (x - c)^2)`` with ``gamma = 1 / lengthscale`` and
    ``lengthscale`` the mean spacing of the (float32) centres. gamma is 1/spacing, not
    1/spacing^2, so each Gaussian's standard deviation is sqrt(spacing / 2): 0.225 A for 80 bins
    over [0, 8] A (gamma 9.875), 0.160 for 40 bins over [-1, 1] (gamma 19.5).
    """

    def __init__(self, vmin: float, vmax: float, bins: int) -> None:
        super().__init__()
        centres = torch.linspace(vmin, vmax, bins)
        self.register_buffer("centres", centres)
        self.lengthscale = float(np.diff(centres.numpy()).mean())
        self.gamma = 1.0 / self.lengthscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (M,) -> (M, bins)
        return torch.exp(-self.gamma * (x.unsqueeze(-1) - self.centres) ** 2)

    def extra_repr(self) -> str:
        return f"bins={self.centres.numel()}, range=[{self.centres[0]:.2f}, {self.centres[-1]:.2f}]"


class MLPLayer(nn.Sequential):
    """Linear -> LayerNorm -> SiLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(
            nn.Linear(in_features, out_features), nn.LayerNorm(out_features), nn.SiLU()
        )


# upstream's names of the four node projections, in the order node_proj stacks them (A, E, B, D)
UPSTREAM_NODE_PROJ = ("src_gate", "dst_update", "dst_gate", "src_update")


class EdgeGatedGraphConv(nn.Module):
    """ALIGNN's edge-gated graph convolution with residuals.

    For an edge ``s -> t`` with features ``y_st``::

        m_st   = A x_s + B x_t + C y_st                       (edge message, before the gate)
        x_t'   = x_t + SiLU(LN(D x_t + sum_s sigmoid(m_st) * E x_s / sum_s sigmoid(m_st)))
        y_st'  = y_st + SiLU(LN(m_st))

    ``dropout`` (the plan's ``graph_dropout``) acts on the node update before its residual, so
    in an ALIGNN layer atoms (atom-graph convolution) and bonds (line-graph convolution) are
    each dropped out once; the angle features, by far the largest tensor, are not. The four
    node projections are one matrix product.
    A layer whose edge output nothing reads (the last of a stack) is built with
    ``edge_output=False``: it returns ``y`` unchanged and has no edge normalisation, so no
    weight in the model is dead.

    Args:
        hidden (int): feature width of nodes and edges.
        dropout (float): dropout probability on the node update.
        edge_output (bool): compute the edge update ``y'``.
    """

    def __init__(self, hidden: int, dropout: float = 0.0, edge_output: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.node_proj = nn.Linear(hidden, 4 * hidden)  # A, E, B, D stacked
        self.edge_gate = nn.Linear(hidden, hidden)  # C
        self.norm_nodes = nn.LayerNorm(hidden)
        self.norm_edges = nn.LayerNorm(hidden) if edge_output else None
        self.dropout = nn.Dropout(dropout)

    def load_upstream(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the weights of upstream ALIGNN's ``EdgeGatedGraphConv`` (the DGL model's or
        the pure-torch ``EdgeGatedGraphConvPure``; their parameter names are the same).

        Upstream's ``src_gate``, ``dst_update``, ``dst_gate`` and ``src_update`` are A, E, B
        and D of the class docstring (``dst_update`` is applied at the source, as upstream's
        ``Bh[src]``); ``bn_nodes`` / ``bn_edges`` are ``norm_nodes`` / ``norm_edges``. A layer
        built with ``edge_output=False`` takes no ``bn_edges``.
        """
        mine = {
            "node_proj.weight": torch.cat([state[f"{n}.weight"] for n in UPSTREAM_NODE_PROJ]),
            "node_proj.bias": torch.cat([state[f"{n}.bias"] for n in UPSTREAM_NODE_PROJ]),
            "edge_gate.weight": state["edge_gate.weight"],
            "edge_gate.bias": state["edge_gate.bias"],
            "norm_nodes.weight": state["bn_nodes.weight"],
            "norm_nodes.bias": state["bn_nodes.bias"],
        }
        if self.norm_edges is not None:
            mine |= {
                "norm_edges.weight": state["bn_edges.weight"],
                "norm_edges.bias": state["bn_edges.bias"],
            }
        self.load_state_dict(mine)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        h = self.hidden
        a, e, b, d = self.node_proj(x).split(h, dim=-1)  # each (N, H)
        # m = A x_s + B x_t + C y with C's bias added on the (N, H) side, and C y accumulated by
        # the matrix product onto the gathered terms (addmm): one pass over (E, H) fewer than
        # gather + gather + linear + add + add. Gathers are index_select (gather_rows), not
        # a[src]: their backward is index_add_, much faster than index_put_.
        gathered = gather_rows(a, src) + gather_rows(b + self.edge_gate.bias, dst)
        m = torch.addmm(gathered, y, self.edge_gate.weight.t())  # (E, H)
        sigma = torch.sigmoid(m)
        num = scatter_sum(sigma * gather_rows(e, src), dst, x.size(0))  # (N, H)
        den = scatter_sum(sigma, dst, x.size(0))
        x_new = x + self.dropout(F.silu(self.norm_nodes(d + num / (den + 1e-6))))
        if self.norm_edges is None:
            return x_new, y
        return x_new, y + F.silu(self.norm_edges(m))


class ALIGNNLayer(nn.Module):
    """One ALIGNN layer: update atoms and bonds on the atom graph, then bonds and angles on the
    line graph (whose nodes are the bonds).

    Args:
        hidden (int): feature width.  dropout (float): ``graph_dropout``.
        bonds_out (bool): later layers read the bond features (False for the last ALIGNN layer
            when no GCN layer follows: the line-graph update is then skipped).
        angles_out (bool): later layers read the angle features (False for the last layer).
    """

    def __init__(
        self, hidden: int, dropout: float = 0.0, bonds_out: bool = True, angles_out: bool = True
    ) -> None:
        super().__init__()
        self.atom_update = EdgeGatedGraphConv(hidden, dropout, edge_output=bonds_out)
        self.bond_update = (
            EdgeGatedGraphConv(hidden, dropout, edge_output=angles_out) if bonds_out else None
        )

    def forward(
        self,
        x: torch.Tensor,  # (N, H) atoms
        y: torch.Tensor,  # (E, H) bonds
        z: torch.Tensor,  # (T, H) angles
        edge_index: torch.Tensor,  # (2, E)
        lg_edge_index: torch.Tensor,  # (2, T)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, m = self.atom_update(x, edge_index, y)
        if self.bond_update is None:
            return x, m, z
        y, z = self.bond_update(m, lg_edge_index, z)
        return x, y, z


class ALIGNNEmbedding(nn.Module):
    """Input embeddings: CGCNN atom features, RBF-expanded bond lengths and angle cosines.

    Args:
        atom_table (Tensor): (Z_max + 1, 92) CGCNN features, looked up by atomic number.
        hidden (int): ``hidden_features``.
        embedding (int): ``embedding_features``, the width between RBF and hidden.
        cutoff (float): upper end of the bond-length RBF range (Angstrom).
        bond_bins (int), angle_bins (int): RBF centres.
    """

    def __init__(
        self,
        atom_table: torch.Tensor,
        hidden: int,
        embedding: int,
        cutoff: float,
        bond_bins: int,
        angle_bins: int,
    ) -> None:
        super().__init__()
        self.register_buffer("atom_table", atom_table.float())
        self.atom = MLPLayer(atom_table.size(1), hidden)
        self.bond = nn.Sequential(
            RBFExpansion(0.0, cutoff, bond_bins),
            MLPLayer(bond_bins, embedding),
            MLPLayer(embedding, hidden),
        )
        self.angle = nn.Sequential(
            RBFExpansion(-1.0, 1.0, angle_bins),
            MLPLayer(angle_bins, embedding),
            MLPLayer(embedding, hidden),
        )

    def forward(
        self, z: torch.Tensor, bond_length: torch.Tensor, angle_cos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.atom(self.atom_table[z]), self.bond(bond_length), self.angle(angle_cos)
