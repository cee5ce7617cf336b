"""Cross-modal blocks: middle fusion, fine-grained atom<->token attention, global attention.

All attention here runs between *real sequences* (atoms of a crystal, tokens of its text) with
padding masks, so head counts and query/key weights always matter. Shapes: B crystals, A = the
largest atom count in the batch, L tokens, H graph width, D text width, F the block's width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention of a query sequence over a key/value sequence of another modality.

    Args:
        query_dim (int): width of the queries' input.
        key_dim (int): width of the keys'/values' input.
        dim (int): attention width (split over ``num_heads``).
        num_heads (int): heads; must divide ``dim``.
        dropout (float): dropout on the attention weights.
    """

    def __init__(self, query_dim: int, key_dim: int, dim: int, num_heads: int, dropout: float):
        super().__init__()
        assert dim % num_heads == 0, "num_heads must divide dim"
        self.num_heads, self.dropout = num_heads, dropout
        self.q = nn.Linear(query_dim, dim)
        self.kv = nn.Linear(key_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _project(
        self, query: torch.Tensor, keys: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head queries (B, h, Q, dim/h), keys and values (B, h, K, dim/h)."""
        b, q_len, _ = query.shape
        h = self.num_heads
        q = self.q(query).view(b, q_len, h, -1).transpose(1, 2)
        k, v = self.kv(keys).view(b, keys.size(1), 2, h, -1).permute(2, 0, 3, 1, 4)
        return q, k, v

    @torch.no_grad()
    def weights(
        self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, h, Q, K) the attention weights :meth:`forward` uses in eval mode (no dropout):
        softmax(q kᵀ / sqrt(dim/h)) over the real keys (``key_mask``), 0 on padding. SDPA
        returns no weights, so they are recomputed here from the same projections and mask."""
        q, k, _ = self._project(query, keys)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(~key_mask[:, None, None, :].bool(), float("-inf"))
        return torch.softmax(scores.float(), dim=-1)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """query (B, Q, query_dim), keys (B, K, key_dim), key_mask (B, K) bool -> (B, Q, dim)."""
        b, q_len, _ = query.shape
        q, k, v = self._project(query, keys)  # (B, h, Q, dim/h), (B, h, K, dim/h) x 2
        attn_mask = key_mask[:, None, None, :]  # (B, 1, 1, K): True = attend
        p = self.dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return self.out(ctx.transpose(1, 2).reshape(b, q_len, -1))


class MiddleFusion(nn.Module):
    """Atoms attend to their crystal's text tokens; a gated residual adds the result.

    ``x <- x + sigmoid(W_g [x, u]) * dropout(W_o u)`` with ``u`` the attention output, so the
    network can learn how much text to let in per atom and feature.

    Args:
        hidden (int): atom width H.  text_dim (int): token width D.
        dim (int): ``middle_fusion_hidden_dim``.  num_heads (int): ``middle_fusion_num_heads``.
        dropout (float): ``middle_fusion_dropout`` (attention weights and the update).
    """

    def __init__(self, hidden: int, text_dim: int, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.attn = CrossAttention(hidden, text_dim, dim, num_heads, dropout)
        self.proj = nn.Linear(dim, hidden)
        self.gate = nn.Linear(hidden + dim, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,  # (N, H)
        atom_dense_index: tuple[torch.Tensor, torch.Tensor],  # (graph, slot) of each atom
        dense_shape: tuple[int, int],  # (B, A)
        tokens: torch.Tensor,  # (B, L, D)
        token_mask: torch.Tensor,  # (B, L)
    ) -> torch.Tensor:
        dense = x.new_zeros((*dense_shape, x.size(1)))
        dense[atom_dense_index] = x
        u = self.attn(dense, tokens, token_mask)[atom_dense_index]  # (N, dim)
        g = torch.sigmoid(self.gate(torch.cat([x, u], dim=-1)))
        return x + g * self.dropout(self.proj(u))


class FineGrainedAttention(nn.Module):
    """Atom<->token attention in both directions, each with residual + LayerNorm at width F.

    Returns the updated atoms (B, A, F) and tokens (B, L, F); both feed the prediction.

    Args:
        hidden (int): atom width H.  text_dim (int): token width D.
        dim (int): ``fine_grained_hidden_dim``.  num_heads (int): ``fine_grained_num_heads``.
        dropout (float): ``fine_grained_dropout``.
    """

    def __init__(self, hidden: int, text_dim: int, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.atom_in = nn.Linear(hidden, dim)
        self.token_in = nn.Linear(text_dim, dim)
        self.atom_to_token = CrossAttention(dim, dim, dim, num_heads, dropout)
        self.token_to_atom = CrossAttention(dim, dim, dim, num_heads, dropout)
        self.atom_norm = nn.LayerNorm(dim)
        self.token_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        atoms: torch.Tensor,  # (B, A, H)
        atom_mask: torch.Tensor,  # (B, A)
        tokens: torch.Tensor,  # (B, L, D)
        token_mask: torch.Tensor,  # (B, L)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, t = self.atom_in(atoms), self.token_in(tokens)
        a_new = self.atom_norm(a + self.dropout(self.atom_to_token(a, t, token_mask)))
        t_new = self.token_norm(t + self.dropout(self.token_to_atom(t, a, atom_mask)))
        return a_new, t_new


class CrossModalAttention(nn.Module):
    """Global attention: the pooled graph vector attends over all tokens and the pooled text
    vector over all atoms (real sequences, so heads and query/key weights matter).

    Args:
        graph_dim (int), text_dim (int): widths of the pooled vectors.
        atom_dim (int), token_dim (int): widths of the sequences attended over.
        dim (int): ``cross_modal_hidden_dim``.  num_heads (int): ``cross_modal_num_heads``.
        dropout (float): ``cross_modal_dropout``.
    """

    def __init__(
        self,
        graph_dim: int,
        text_dim: int,
        atom_dim: int,
        token_dim: int,
        dim: int,
        num_heads: int,
        dropout: float,
    ):
        super().__init__()
        self.graph_in = nn.Linear(graph_dim, dim)
        self.text_in = nn.Linear(text_dim, dim)
        self.graph_to_tokens = CrossAttention(graph_dim, token_dim, dim, num_heads, dropout)
        self.text_to_atoms = CrossAttention(text_dim, atom_dim, dim, num_heads, dropout)
        self.graph_norm = nn.LayerNorm(dim)
        self.text_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        graph: torch.Tensor,  # (B, graph_dim)
        text: torch.Tensor,  # (B, text_dim)
        atoms: torch.Tensor,  # (B, A, atom_dim)
        atom_mask: torch.Tensor,
        tokens: torch.Tensor,  # (B, L, token_dim)
        token_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g_ctx = self.graph_to_tokens(graph[:, None], tokens, token_mask)[:, 0]  # (B, dim)
        t_ctx = self.text_to_atoms(text[:, None], atoms, atom_mask)[:, 0]
        g = self.graph_norm(self.graph_in(graph) + self.dropout(g_ctx))
        t = self.text_norm(self.text_in(text) + self.dropout(t_ctx))
        return g, t


def masked_mean(seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid positions: seq (B, S, C), mask (B, S) -> (B, C)."""
    m = mask.unsqueeze(-1).to(seq.dtype)
    return (seq * m).sum(1) / m.sum(1).clamp_min(1.0)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of ``a`` and ``b`` (B, C)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature  # (B, B)
    labels = torch.arange(a.size(0), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
