"""Text encoder: any Hugging Face encoder, or a tiny BERT built from a config (offline).

What is frozen never changes, so its outputs can be computed once per crystal and stored on disk
(``data/text_states.py``, built by ``training/text_store.py``): a fully frozen encoder then runs
no layer at all during training, and one with ``train_last_n_layers=k`` runs only its top ``k``
layers, from the stored states that enter them (:meth:`TextEncoder.frozen_states`,
:meth:`TextEncoder.from_states`). The frozen part always runs in eval mode (no dropout), with a
store or without, so both give the same outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

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

    from fusion_tuner import packaged

    path = packaged.resolve(name_or_path)  # pkg:MODULE/DIR -> the folder in that package
    try:
        if pretrained:
            return AutoModel.from_pretrained(path)
        return AutoModel.from_config(AutoConfig.from_pretrained(path))
    except OSError as exc:
        raise OSError(
            f"could not load text.model_name_or_path={name_or_path!r}: {exc}. Download it once "
            "with network access, or use text=tiny for the offline encoder."
        ) from exc


def _layer_holder(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """(parent module, attribute name, the ModuleList of transformer layers) of ``model``."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        *parents, name = path.split(".")
        obj: object = model
        for part in parents:
            obj = getattr(obj, part, None)
        layers = getattr(obj, name, None)
        if isinstance(layers, nn.ModuleList):
            return obj, name, layers  # type: ignore[return-value]
    raise ValueError(
        f"text.train_last_n_layers: cannot find the transformer layers of {type(model).__name__}"
    )


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    return _layer_holder(model)[2]


class TextEncoder(nn.Module):
    """Wraps an HF encoder: token states (B, L, D), a pooled vector (B, D), fine-tuning control.

    Args:
        model (nn.Module): the HF encoder (returns ``last_hidden_state``).
        pooling (str): ``cls`` (first token) or ``mean`` (over real tokens).
        freeze (bool): no encoder weight is trained.
        train_last_n_layers (int): when not frozen, train only the last N layers (-1: all).
    """

    def __init__(
        self,
        model: nn.Module,
        pooling: str = "cls",
        freeze: bool = False,
        train_last_n_layers: int = -1,
    ) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.frozen = freeze
        self.dim = int(model.config.hidden_size)
        # stored states may be fed to forward() (set once a matching store is attached)
        self.accepts_states = False
        self.n_layers = 0
        self.n_trainable_layers = -1
        if freeze or train_last_n_layers >= 0:
            model.requires_grad_(False)
        if not freeze and train_last_n_layers >= 0:
            layers = _encoder_layers(model)
            self.n_layers, self.n_trainable_layers = (
                len(layers),
                min(train_last_n_layers, len(layers)),
            )
            for layer in self.trainable_layers():
                layer.requires_grad_(True)

    # ----------------------------------------------------------------- frozen / trainable
    @property
    def frozen_layers(self) -> int | None:
        """How many layers (from the bottom) never change: all of them (``-1`` stands for the
        whole model, outputs included) when frozen; None when every weight trains."""
        if self.frozen or self.n_trainable_layers == 0:
            return -1
        if self.n_trainable_layers > 0:
            return self.n_layers - self.n_trainable_layers
        return None

    def trainable_layers(self) -> list[nn.Module]:
        """The top layers that train under ``train_last_n_layers`` (empty otherwise)."""
        if self.frozen or self.n_trainable_layers <= 0:
            return []
        layers = _encoder_layers(self.model)
        return list(layers)[len(layers) - self.n_trainable_layers :]

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen_layers is not None:
            # The frozen part never uses dropout (a deliberate, standard choice): its outputs
            # are then a function of the text alone, so they can be stored and reused; the top
            # layers of train_last_n_layers keep their dropout.
            self.model.eval()
            for layer in self.trainable_layers():
                layer.train(mode)
        return self

    def frozen_identity(self) -> str:
        """sha256 of the frozen part's weights (names, shapes, dtypes, values): what the stored
        states depend on besides the tokens."""
        trainable = {id(p) for layer in self.trainable_layers() for p in layer.parameters()}
        trainable |= {id(b) for layer in self.trainable_layers() for b in layer.buffers()}
        digest = hashlib.sha256(type(self.model).__name__.encode())
        for name, tensor in self.model.state_dict(keep_vars=True).items():
            if id(tensor) in trainable:
                continue
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            if t.numel():
                digest.update(memoryview(t.view(torch.uint8).numpy()))  # no copy
        return digest.hexdigest()

    # ------------------------------------------------------------------------- encoding
    def _encode(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state

    @contextlib.contextmanager
    def _bottom_only(self) -> Iterator[None]:
        """Within the block, the HF model runs only its frozen layers."""
        holder, name, layers = _layer_holder(self.model)
        bottom = nn.ModuleList(list(layers)[: len(layers) - self.n_trainable_layers])
        setattr(holder, name, bottom)
        try:
            yield
        finally:
            setattr(holder, name, layers)

    @torch.no_grad()
    def frozen_states(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and mask -> (B, L, D) what the frozen part outputs: the final token states
        of a frozen encoder, or the states entering the first trainable layer."""
        if self.frozen_layers is None:
            raise ValueError("every weight of this text encoder trains: nothing to store")
        was_training = self.training
        self.eval()
        try:
            if self.frozen_layers == -1:
                return self._encode(input_ids, mask)
            with self._bottom_only():
                return self._encode(input_ids, mask)
        finally:
            self.train(was_training)

    def _attention_mask(self, mask: torch.Tensor, states: torch.Tensor) -> torch.Tensor | None:
        """The attention mask the HF model hands its layers, for (B, L) ``mask``."""
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:  # transformers < 5: an additive (B, 1, 1, L) mask
            return self.model.get_extended_attention_mask(mask, mask.shape)
        return create_bidirectional_mask(
            config=self.model.config, inputs_embeds=states, attention_mask=mask
        )

    def from_states(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) stored frozen-part states -> (B, L, D) final token states: runs the
        trainable top layers (none for a frozen encoder). BERT-style layers
        (``layer(hidden, attention_mask)``); ``training/text_store.py`` checks the result
        against the direct computation before a store is used."""
        layers = self.trainable_layers()
        if not layers:
            return states
        attention = self._attention_mask(mask, states)
        for layer in layers:
            out = layer(states, attention)
            states = out[0] if isinstance(out, tuple) else out
        return states

    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, stored: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, mask (B, L) -> token states (B, L, D), pooled (B, D).

        Args:
            stored: (sum of real tokens, D) the frozen part's stored states of the batch's real
                tokens, row by row (``CrystalGraphData.text_states``); the frozen part then
                does not run.
        """
        if stored is not None:
            if not self.accepts_states:
                raise ValueError(
                    "the batch carries stored text states, but this text encoder was not "
                    "prepared for them (training/text_store.py attaches a matching store)"
                )
            weight = next(self.model.parameters())
            dense = torch.zeros((*mask.shape, self.dim), dtype=weight.dtype, device=mask.device)
            dense[mask.bool()] = stored.to(weight.dtype)  # real tokens come first in each row
            states = self.from_states(dense, mask)
        elif self.frozen_layers == -1:
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
