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
from typing import Any

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

    from fusion_tuner import packaged

    path = packaged.resolve(name_or_path)  # pkg:MODULE/DIR -> the folder in that package
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise DataError(
            f"could not load the tokenizer of text.model_name_or_path={name_or_path!r}: {exc}. "
            "Download it once with network access (it is then cached by transformers), or use "
            "text=tiny for the offline encoder."
        ) from exc


def full_lengths(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """How many tokens each text has before truncation (special tokens included)."""
    encoded = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    return torch.tensor([len(ids) for ids in encoded], dtype=torch.int32)


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids of each text (truncated to ``max_length``), concatenated with offsets, and
    each text's length before truncation (``full_lengths``)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    flat = np.fromiter(
        (t for ids in encoded for t in ids), dtype=np.int64, count=int(lengths.sum())
    )
    return {
        "token_ids": torch.from_numpy(flat).to(torch.int32),
        "token_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)])),
        "full_lengths": full_lengths(tokenizer, texts),
    }


# more than this share of descriptions cut at text.max_length: the run warns
TRUNCATION_WARN_FRACTION = 0.05


def length_report(lengths: Sequence[int] | torch.Tensor, max_length: int) -> dict[str, Any]:
    """The distribution of tokenised lengths (before truncation) and how many texts
    ``max_length`` cuts: ``data_report.json``'s ``text_lengths``."""
    arr = np.asarray(lengths, dtype=np.int64)
    cut = int((arr > max_length).sum())
    out: dict[str, Any] = {"n": int(arr.size), "max_length": int(max_length), "truncated": cut}
    out["truncated_fraction"] = round(cut / arr.size, 4) if arr.size else 0.0
    if arr.size:
        out |= {
            "min": int(arr.min()),
            "median": float(np.median(arr)),
            "p90": float(np.percentile(arr, 90)),
            "max": int(arr.max()),
        }
    return out


def warn_truncation(report: dict[str, Any]) -> str | None:
    """The warning (also logged) when more than :data:`TRUNCATION_WARN_FRACTION` of the texts
    are cut at ``text.max_length``; None otherwise."""
    if not report["n"] or report["truncated"] / report["n"] <= TRUNCATION_WARN_FRACTION:
        return None
    message = (
        f"text.max_length={report['max_length']} cuts {report['truncated']} of {report['n']} "
        f"descriptions ({100 * report['truncated'] / report['n']:.0f} %; tokenised lengths: "
        f"median {report['median']:g}, 90th percentile {report['p90']:g}, max {report['max']}): "
        "what comes after never reaches the text encoder. Raise text.max_length (at most the "
        "encoder's position limit, 512 for BERT-shaped encoders)"
    )
    log.warning(message)
    return message
