"""Tokenizers: a WordPiece vocabulary trained on the training texts (offline), or a HF hub one.

The tokenizer is passed around explicitly; nothing here is global. Its identity (a hash of its
vocabulary and settings) is part of the token cache key and of every checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fusion_tuner.errors import DataError
from fusion_tuner.io import process_umask

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Sequence[str], vocab_size: int):
    """Train a BERT-style WordPiece tokenizer on ``texts`` (cased; [CLS] text [SEP])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tokenizer_identity(tokenizer) -> str:
    """A stable id of a tokenizer: its class and a hash of its vocabulary."""
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]
    return f"{type(tokenizer).__name__}:{len(vocab)}:{digest}"


def tiny_tokenizer(train_texts: Sequence[str], vocab_size: int, cache_root: Path):
    """Train (or load from the cache) the WordPiece tokenizer of ``text=tiny``."""
    from transformers import PreTrainedTokenizerFast

    corpus = hashlib.sha256("\x1e".join(train_texts).encode()).hexdigest()[:16]
    target = cache_root / "tokenizers" / f"wordpiece-{vocab_size}-{corpus}"
    if (target / "tokenizer.json").is_file():
        try:
            return PreTrainedTokenizerFast.from_pretrained(str(target))
        except Exception as exc:  # a damaged cached tokenizer: set it aside and retrain
            aside = target.with_name(f"{target.name}.corrupt-{os.getpid()}-{time.time_ns()}")
            with contextlib.suppress(OSError):
                target.rename(aside)
            log.warning(
                "cached tokenizer %s is unreadable (%s: %s); moved it to %s and retraining",
                target,
                type(exc).__name__,
                str(exc)[:200],
                aside.name,
            )
    tok = train_wordpiece(train_texts, vocab_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    os.chmod(tmp, 0o777 & ~process_umask())  # mkdtemp's 0700: as mkdir would make it
    tok.save_pretrained(str(tmp))
    try:
        tmp.rename(target)
    except OSError:  # another run of the sweep got there first: use its identical files
        shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(str(target))


def hub_tokenizer(name_or_path: str):
    """``AutoTokenizer.from_pretrained``, with a message that says what to do when offline."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except OSError as exc:
        raise DataError(
            f"could not load the tokenizer of text.model_name_or_path={name_or_path!r}: {exc}. "
            "Download it once with network access (it is then cached by transformers), or use "
            "text=tiny for the offline encoder."
        ) from exc


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids of each text (truncated to ``max_length``), concatenated with offsets."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    flat = np.fromiter(
        (t for ids in encoded for t in ids), dtype=np.int64, count=int(lengths.sum())
    )
    return {
        "token_ids": torch.from_numpy(flat).to(torch.int32),
        "token_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)])),
    }
