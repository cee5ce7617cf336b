"""FusionPropertyModel: ALIGNN graph encoder + text encoder, fused, predicting one property.

Forward pass, for a batch of B crystals (N atoms, L tokens):

1. Embeddings, then ``alignn_layers`` ALIGNN layers; after each layer listed in
   ``middle_fusion_layers`` (1-based) atoms attend to their text tokens (:class:`MiddleFusion`).
   Then ``gcn_layers`` edge-gated convolutions on the atom graph. Mean over atoms: stage
   ``graph`` (B, H). The text encoder gives token states and stage ``text`` (B, D).
2. Fine-grained attention (optional): atoms <-> tokens; the mean over atoms gives
   ``graph_fine`` and the text pooling (``text.pooling``: first token or mean) gives
   ``text_fine`` (B, F_fg).
3. Cross-modal attention (optional): pooled graph over tokens, pooled text over atoms:
   ``graph_final`` and ``text_final`` (B, F_cm).
4. ``fused`` = concatenation of the last graph-side and text-side vectors -> MLP -> the
   standardised property, de-standardised with the training split's mean and std (in float32,
   also under bf16 autocast).

Graph-only (``text=none``, no text encoder): step 1 without the text and middle fusion, then
``fused`` = ``graph`` -> the same MLP; the stages are exactly ``graph`` and ``fused``.

A stage whose component is switched off is absent from ``stages`` (never a silent copy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.utils import scatter, to_dense_batch

from fusion_tuner.models.alignn import ALIGNNEmbedding, ALIGNNLayer, EdgeGatedGraphConv
from fusion_tuner.models.fusion import (
    CrossModalAttention,
    FineGrainedAttention,
    info_nce,
    masked_mean,
)
from fusion_tuner.models.text import TextEncoder

STAGES = ("graph", "text", "graph_fine", "text_fine", "graph_final", "text_final", "fused")


@dataclass
class ModelOutput:
    """What :class:`FusionPropertyModel` returns.

    Attributes:
        prediction (Tensor): (B,) the property in its own units.
        normalized (Tensor): (B,) the prediction on the standardised scale (what the loss sees).
        stages (dict[str, Tensor]): stage name -> (B, width) representation per crystal.
        contrastive_loss (Tensor | None): unweighted symmetric InfoNCE, when enabled.
        contrastive_pair (tuple[Tensor, Tensor] | None): the (B, C) graph and text projections
            the InfoNCE compares (a run on several ranks computes it over the whole batch).
    """

    prediction: torch.Tensor
    normalized: torch.Tensor
    stages: dict[str, torch.Tensor] = field(default_factory=dict)
    contrastive_loss: torch.Tensor | None = None
    contrastive_pair: tuple[torch.Tensor, torch.Tensor] | None = None


class FusionPropertyModel(nn.Module):
    """The fused graph + text property model. Build it with
    :func:`fusion_tuner.models.builders.build_model`; modules arrive ready-made.

    Args:
        embedding (ALIGNNEmbedding): atom, bond and angle input embeddings.
        alignn_layers (nn.ModuleList): ALIGNN layers.
        gcn_layers (nn.ModuleList): edge-gated convolutions on the atom graph.
        text_encoder (TextEncoder | None): the text encoder; None for the graph-only model
            (then ``middle_fusion`` is empty and there is no attention or contrastive part).
        middle_fusion (nn.ModuleDict): ``{"2": MiddleFusion, ...}`` keyed by 1-based layer.
        fine_grained (FineGrainedAttention | None), cross_modal (CrossModalAttention | None).
        head (nn.Module): fused vector -> 1.
        contrastive (tuple[nn.Module, nn.Module, float] | None): graph and text projections and
            the temperature, when the contrastive loss is on.
    """

    def __init__(
        self,
        embedding: ALIGNNEmbedding,
        alignn_layers: nn.ModuleList,
        gcn_layers: nn.ModuleList,
        text_encoder: TextEncoder | None,
        middle_fusion: nn.ModuleDict,
        fine_grained: FineGrainedAttention | None,
        cross_modal: CrossModalAttention | None,
        head: nn.Module,
        contrastive: tuple[nn.Module, nn.Module, float] | None = None,
    ) -> None:
        super().__init__()
        if text_encoder is None and (middle_fusion or fine_grained or cross_modal or contrastive):
            raise ValueError("a graph-only model (no text encoder) has no fusion or attention")
        self.embedding = embedding
        self.alignn_layers = alignn_layers
        self.gcn_layers = gcn_layers
        self.text_encoder = text_encoder
        self.middle_fusion = middle_fusion
        self.fine_grained = fine_grained
        self.cross_modal = cross_modal
        self.head = head
        self.contrastive_graph = contrastive[0] if contrastive else None
        self.contrastive_text = contrastive[1] if contrastive else None
        self.contrastive_temperature = contrastive[2] if contrastive else None
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self._compiled_graph_encoder: Callable[..., torch.Tensor] | None = None
        self._graphs_before_compile = 0

    def encode_graph(
        self,
        z: torch.Tensor,  # (N,) atomic numbers
        bond_length: torch.Tensor,  # (E,)
        angle_cos: torch.Tensor,  # (T,)
        edge_index: torch.Tensor,  # (2, E)
        lg_edge_index: torch.Tensor,  # (2, T)
        dense_index: tuple[torch.Tensor, torch.Tensor] | None = None,
        dense_shape: tuple[int, int] | None = None,
        tokens: torch.Tensor | None = None,  # (B, L, D)
        token_mask: torch.Tensor | None = None,  # (B, L)
    ) -> torch.Tensor:
        """(N, H) atom features after the embeddings, the ALIGNN layers (with middle fusion
        where configured; it needs ``dense_index``, ``dense_shape`` and the tokens) and the GCN
        layers: the part of the model that :meth:`compile_graph_encoder` compiles."""
        x, y, z = self.embedding(z, bond_length, angle_cos)
        for number, layer in enumerate(self.alignn_layers, start=1):
            x, y, z = layer(x, y, z, edge_index, lg_edge_index)
            if str(number) in self.middle_fusion:
                x = self.middle_fusion[str(number)](x, dense_index, dense_shape, tokens, token_mask)
        for conv in self.gcn_layers:
            x, y = conv(x, edge_index, y)
        return x

    def compile_graph_encoder(self) -> None:
        """Run :meth:`encode_graph` through ``torch.compile`` with dynamic shapes (batches of
        other sizes reuse the compiled code; ``trainer.compile``). The compiled function is an
        attribute, not a submodule: parameter names, ``state_dict`` and checkpoints are those
        of the eager model."""
        import torch._dynamo
        from torch._dynamo.utils import counters

        # every variant (training / evaluation, each model configuration of a sweep that runs
        # in one process) is a cache entry of the one function; past the limit (8 by default)
        # torch would silently run the rest eagerly
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self._compiled_graph_encoder = torch.compile(self.encode_graph, dynamic=True)
        self._graphs_before_compile = counters["stats"]["unique_graphs"]

    def compile_report(self) -> str:
        """How many graphs ``torch.compile`` has built since :meth:`compile_graph_encoder`:
        one per variant (training, evaluation, and where inductor guards a size, e.g. its
        reduction heuristics at 4,096 rows); each after the first is a recompilation."""
        from torch._dynamo.utils import counters

        if self._compiled_graph_encoder is None:
            return "torch.compile: off"
        graphs = counters["stats"]["unique_graphs"] - self._graphs_before_compile
        if graphs == 0:
            return "torch.compile: reused the graphs this process compiled for an earlier run"
        return (
            f"torch.compile: {graphs} graph(s) compiled for the graph encoder "
            f"({graphs - 1} recompilation(s))"
        )

    def set_normalizer(self, mean: float, std: float) -> None:
        """Store the training split's target mean and std (kept in every checkpoint)."""
        self.target_mean.fill_(mean)
        self.target_std.fill_(std if std > 0 else 1.0)

    @property
    def graph_only(self) -> bool:
        """True for the ``text=none`` model: ALIGNN, mean readout, head."""
        return self.text_encoder is None

    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.target_mean) / self.target_std

    def destandardize(self, normalized: torch.Tensor) -> torch.Tensor:
        """(B,) standardised head output -> the property in its units, in float32.

        Under bf16 autocast the head's output is bf16, and bf16 times the float32 0-d buffers
        would stay bf16 (about 3 significant digits of the property); the affine map is
        therefore done in float32, outside autocast.
        """
        with torch.autocast(device_type=normalized.device.type, enabled=False):
            return normalized.float() * self.target_std.float() + self.target_mean.float()

    def _text(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = batch.attention_mask.bool()
        length = int(mask.sum(1).max())  # trim padding shared by the whole batch
        stored = getattr(batch, "text_states", None)  # (real tokens, D): the frozen part's
        tokens, pooled = self.text_encoder(
            batch.input_ids[:, :length], mask[:, :length].long(), stored
        )
        return tokens, pooled, mask[:, :length]

    def forward(self, batch) -> ModelOutput:
        """batch: a PyG batch of :class:`~fusion_tuner.data.dataset.CrystalGraphData`."""
        if self.graph_only:
            tokens = token_mask = None
        else:
            tokens, text_vec, token_mask = self._text(batch)  # (B, L, D), (B, D), (B, L)
        stages: dict[str, torch.Tensor] = {}
        n_graphs = batch.num_graphs
        dense_index = dense_shape = None
        if self.middle_fusion:
            counts = torch.bincount(batch.batch, minlength=n_graphs)
            slot = (
                torch.arange(batch.z.size(0), device=batch.z.device)
                - (torch.cumsum(counts, 0) - counts)[batch.batch]
            )
            dense_index = (batch.batch, slot)
            dense_shape = (n_graphs, int(counts.max()))
        encode = self._compiled_graph_encoder or self.encode_graph
        x = encode(
            batch.z,
            batch.bond_length,
            batch.angle_cos,
            batch.edge_index,
            batch.lg_edge_index,
            dense_index,
            dense_shape,
            tokens,
            token_mask,
        )
        if self.graph_only:
            graph_vec = scatter(x, batch.batch, dim=0, dim_size=n_graphs, reduce="mean")  # (B, H)
            stages["graph"] = stages["fused"] = graph_vec
            normalized = self.head(graph_vec).squeeze(-1)
            return ModelOutput(self.destandardize(normalized), normalized, stages)
        atoms, atom_mask = to_dense_batch(x, batch.batch, batch_size=n_graphs)  # (B, A, H)
        graph_vec = masked_mean(atoms, atom_mask)
        stages["graph"], stages["text"] = graph_vec, text_vec
        g, t, atom_seq, token_seq = graph_vec, text_vec, atoms, tokens
        if self.fine_grained is not None:
            atom_seq, token_seq = self.fine_grained(atoms, atom_mask, tokens, token_mask)
            g, t = masked_mean(atom_seq, atom_mask), self.text_encoder.pool(token_seq, token_mask)
            stages["graph_fine"], stages["text_fine"] = g, t
        if self.cross_modal is not None:
            g, t = self.cross_modal(g, t, atom_seq, atom_mask, token_seq, token_mask)
            stages["graph_final"], stages["text_final"] = g, t
        fused = torch.cat([g, t], dim=-1)
        stages["fused"] = fused
        normalized = self.head(fused).squeeze(-1)
        contrastive, pair = None, None
        if self.contrastive_graph is not None:
            pair = (self.contrastive_graph(graph_vec), self.contrastive_text(text_vec))
            contrastive = info_nce(*pair, float(self.contrastive_temperature))
        return ModelOutput(
            prediction=self.destandardize(normalized),
            normalized=normalized,
            stages=stages,
            contrastive_loss=contrastive,
            contrastive_pair=pair,
        )


def gcn_stack(n: int, hidden: int, dropout: float) -> nn.ModuleList:
    """``n`` edge-gated convolutions; the last one skips its unread edge update."""
    return nn.ModuleList(
        EdgeGatedGraphConv(hidden, dropout, edge_output=i < n - 1) for i in range(n)
    )


def alignn_stack(n: int, hidden: int, dropout: float, gcn_follows: bool) -> nn.ModuleList:
    """``n`` ALIGNN layers, each skipping outputs that no later layer reads."""
    bonds_out = [i < n - 1 or gcn_follows for i in range(n)]
    # layer i's angles are read only by layer i + 1's line-graph update, if it has one
    angles_out = [i < n - 1 and bonds_out[i + 1] for i in range(n)]
    return nn.ModuleList(
        ALIGNNLayer(hidden, dropout, bonds_out[i], angles_out[i]) for i in range(n)
    )
