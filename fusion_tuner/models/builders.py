"""Config -> model. The only module under ``models/`` that knows the config; it reads each field
once and passes plain numbers to constructors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fusion_tuner.config import Config, modality, model_width
from fusion_tuner.models.alignn import ALIGNNEmbedding
from fusion_tuner.models.fusion import CrossModalAttention, FineGrainedAttention, MiddleFusion
from fusion_tuner.models.property import FusionPropertyModel, alignn_stack, gcn_stack
from fusion_tuner.models.text import TextEncoder, hub_encoder, tiny_bert

CONTRASTIVE_DIM = 128


def _info(data_info: Any) -> dict[str, Any]:
    return data_info if isinstance(data_info, dict) else data_info.as_dict()


def build_text_encoder(cfg: Config, info: dict[str, Any], pretrained: bool = True) -> TextEncoder:
    """The text encoder of ``cfg.text`` (tiny BERT, or a hub model)."""
    t = cfg.text
    if t.model_name_or_path is None:
        model = tiny_bert(
            info["vocab_size"],
            t.tiny_hidden_size,
            t.tiny_num_layers,
            t.tiny_num_heads,
            t.tiny_intermediate_size,
            info["max_length"],
            info["pad_token_id"],
        )
    else:
        model = hub_encoder(t.model_name_or_path, pretrained=pretrained)
    return TextEncoder(
        model,
        pooling=t.pooling,
        freeze=t.freeze,
        train_last_n_layers=t.train_last_n_layers,
    )


def readout_head(in_dim: int, hidden: int, readout: str) -> nn.Module:
    """``arch.readout``: mlp (Linear -> SiLU -> Linear) | linear (one Linear, upstream's fc)."""
    if readout == "linear":
        return nn.Linear(in_dim, 1)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, 1))


def build_model(cfg: Config, data_info: Any, pretrained_text: bool = True) -> FusionPropertyModel:
    """Build the fused model of ``cfg`` (or, with ``text.enabled=false``, the graph-only one)
    for data described by ``data_info``.

    Args:
        cfg: the run's config (``arch``, ``fusion``, ``attention``, ``regularization``, ``text``).
        data_info: :class:`~fusion_tuner.data.module.DataInfo` or its dict (from a checkpoint).
        pretrained_text: load hub text weights (False when a checkpoint will overwrite them).
    """
    info = _info(data_info)
    _check_modality(cfg, info)
    arch = cfg.arch
    h = model_width(cfg, arch.hidden_features)
    # modules are built in this order, so that a seed gives the same initial weights
    embedding, alignn, gcn = _graph_encoder(cfg, h)
    if not cfg.text.enabled:  # text=none: ALIGNN, mean readout, the head on the graph vector
        head = readout_head(h, h, arch.readout)
        return FusionPropertyModel(embedding, alignn, gcn, None, nn.ModuleDict(), None, None, head)
    text = build_text_encoder(cfg, info, pretrained=pretrained_text)
    d = text.dim
    middle = _middle_fusion(cfg, h, d)
    fine, cross, g_dim, t_dim = _attention(cfg, h, d)
    head = readout_head(g_dim + t_dim, h, arch.readout)
    contrastive = _contrastive_projections(cfg, h, d)
    return FusionPropertyModel(
        embedding=embedding,
        alignn_layers=alignn,
        gcn_layers=gcn,
        text_encoder=text,
        middle_fusion=middle,
        fine_grained=fine,
        cross_modal=cross,
        head=head,
        contrastive=contrastive,
    )


def _check_modality(cfg: Config, info: dict[str, Any]) -> None:
    """Refuse data prepared for the other modality (fused vs graph-only)."""
    recorded = info.get("modality")  # absent in checkpoints from before text=none (all fused)
    if recorded is not None and recorded != modality(cfg):
        raise ValueError(
            f"the data was prepared for a {recorded} model but text.enabled={cfg.text.enabled} "
            f"asks for a {modality(cfg)} model"
        )


def _graph_encoder(cfg: Config, h: int) -> tuple[ALIGNNEmbedding, nn.ModuleList, nn.ModuleList]:
    """The graph side at width ``h``: embedding, ALIGNN layers, GCN layers."""
    from fusion_tuner.data.graphs import cgcnn_table

    arch, reg = cfg.arch, cfg.regularization
    table = torch.from_numpy(np.nan_to_num(cgcnn_table(), nan=0.0))
    ds = cfg.dataset  # the RBF expansions of the cached raw lengths/cosines live in the model
    embedding = ALIGNNEmbedding(
        table,
        h,
        model_width(cfg, arch.embedding_features),
        ds.cutoff,
        ds.bond_rbf_bins,
        ds.angle_rbf_bins,
    )
    alignn = alignn_stack(arch.alignn_layers, h, reg.graph_dropout, arch.gcn_layers > 0)
    gcn = gcn_stack(arch.gcn_layers, h, reg.graph_dropout)
    return embedding, alignn, gcn


def _middle_fusion(cfg: Config, h: int, d: int) -> nn.ModuleDict:
    """``fusion.middle_fusion_layers``: layer index -> the text-into-graph block after it."""
    fus, reg = cfg.fusion, cfg.regularization
    middle = nn.ModuleDict()
    if fus.use_middle_fusion:
        for layer in fus.middle_fusion_layers:
            middle[str(layer)] = MiddleFusion(
                h,
                d,
                model_width(cfg, fus.middle_fusion_hidden_dim, fus.middle_fusion_num_heads),
                fus.middle_fusion_num_heads,
                reg.middle_fusion_dropout,
            )
    return middle


def _attention(
    cfg: Config, h: int, d: int
) -> tuple[FineGrainedAttention | None, CrossModalAttention | None, int, int]:
    """The fine-grained and cross-modal attention blocks (None when off), and the widths of the
    graph and text vectors the head reads."""
    att, reg = cfg.attention, cfg.regularization
    fine = None
    g_dim, t_dim, atom_dim, token_dim = h, d, h, d
    if att.use_fine_grained_attention:
        f = model_width(cfg, att.fine_grained_hidden_dim, att.fine_grained_num_heads)
        fine = FineGrainedAttention(h, d, f, att.fine_grained_num_heads, reg.fine_grained_dropout)
        g_dim = t_dim = atom_dim = token_dim = f
    cross = None
    if att.use_cross_modal_attention:
        c = model_width(cfg, att.cross_modal_hidden_dim, att.cross_modal_num_heads)
        cross = CrossModalAttention(
            g_dim,
            t_dim,
            atom_dim,
            token_dim,
            c,
            att.cross_modal_num_heads,
            reg.cross_modal_dropout,
        )
        g_dim = t_dim = c
    return fine, cross, g_dim, t_dim


def _contrastive_projections(
    cfg: Config, h: int, d: int
) -> tuple[nn.Linear, nn.Linear, float] | None:
    """The graph and text projections and temperature of the contrastive loss (None when off)."""
    fus = cfg.fusion
    if not fus.use_contrastive_loss:
        return None
    return (
        nn.Linear(h, CONTRASTIVE_DIM),
        nn.Linear(d, CONTRASTIVE_DIM),
        fus.contrastive_temperature,
    )
