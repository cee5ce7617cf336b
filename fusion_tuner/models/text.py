"""Text encoder: any Hugging Face encoder, or a tiny BERT built from a config (offline).

When the encoder is frozen its token states for a crystal never change, so they are computed
once per crystal id and kept in memory within a byte budget (``text.frozen_cache_mb``): later
batches and epochs read them instead of re-encoding.
"""

from __future__ import annotations

import torch
from torch import nn


def tiny_bert(
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_length: int,
    pad_token_id: int,
) -> nn.Module:
    """A small BERT encoder (no pooler), randomly initialised; nothing is downloaded."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max(max_length, 64),
        pad_token_id=pad_token_id,
    )
    return BertModel(config, add_pooling_layer=False)


def hub_encoder(name_or_path: str, pretrained: bool = True) -> nn.Module:
    """``AutoModel.from_pretrained`` (or only its architecture, to load a checkpoint into)."""
    from transformers import AutoConfig, AutoModel

    try:
        if pretrained:
            return AutoModel.from_pretrained(name_or_path)
        return AutoModel.from_config(AutoConfig.from_pretrained(name_or_path))
    except OSError as exc:
        raise OSError(
            f"could not load text.model_name_or_path={name_or_path!r}: {exc}. Download it once "
            "with network access, or use text=tiny for the offline encoder."
        ) from exc


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        obj: object = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(
        f"text.train_last_n_layers: cannot find the transformer layers of {type(model).__name__}"
    )


class TextEncoder(nn.Module):
    """Wraps an HF encoder: token states (B, L, D), a pooled vector (B, D), fine-tuning control.

    Args:
        model (nn.Module): the HF encoder (returns ``last_hidden_state``).
        pooling (str): ``cls`` (first token) or ``mean`` (over real tokens).
        freeze (bool): no encoder weight is trained; outputs are cached per crystal id.
        train_last_n_layers (int): when not frozen, train only the last N layers (-1: all).
        cache_bytes (int): memory budget of the frozen-output cache (0 disables it).
    """

    def __init__(
        self,
        model: nn.Module,
        pooling: str = "cls",
        freeze: bool = False,
        train_last_n_layers: int = -1,
        cache_bytes: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.frozen = freeze
        self.dim = int(model.config.hidden_size)
        self.cache_bytes = cache_bytes if freeze else 0
        self._cache: dict[str, torch.Tensor] = {}
        self._cached_bytes = 0
        if freeze:
            model.requires_grad_(False)
        elif train_last_n_layers >= 0:
            model.requires_grad_(False)
            layers = _encoder_layers(model)
            for layer in list(layers)[len(layers) - train_last_n_layers :]:
                layer.requires_grad_(True)

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # a frozen encoder never uses dropout: its outputs are cacheable
        return self

    def _encode(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state

    def _cached_states(
        self, input_ids: torch.Tensor, mask: torch.Tensor, ids: list[str]
    ) -> torch.Tensor:
        missing = [i for i, cid in enumerate(ids) if cid not in self._cache]
        fresh = {}
        if missing:
            with torch.no_grad():
                states = self._encode(input_ids[missing], mask[missing])
            for row, i in enumerate(missing):
                fresh[ids[i]] = states[row, : int(mask[i].sum())]
        out = input_ids.new_zeros((len(ids), input_ids.size(1), self.dim), dtype=torch.float32)
        for i, cid in enumerate(ids):
            s = self._cache.get(cid)
            s = fresh[cid] if s is None else s.to(out.device)
            out[i, : s.size(0)] = s
        for cid, s in fresh.items():
            size = s.numel() * s.element_size()
            if self._cached_bytes + size <= self.cache_bytes:
                self._cache[cid] = s.detach().cpu() if s.is_cuda else s.detach()
                self._cached_bytes += size
        return out

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, ids: list[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, mask (B, L) -> token states (B, L, D), pooled (B, D)."""
        if self.frozen and self.cache_bytes > 0 and ids is not None:
            states = self._cached_states(input_ids, mask, ids)
        elif self.frozen:
            with torch.no_grad():
                states = self._encode(input_ids, mask)
        else:
            states = self._encode(input_ids, mask)
        return states, self.pool(states, mask)

    def pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, C) token sequence -> (B, C): the first ([CLS]) token, or the mean of real ones."""
        if self.pooling == "cls":
            return states[:, 0]
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp_min(1.0)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._cached_bytes = 0
