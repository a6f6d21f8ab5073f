"""The transformers backend: any local HF model folder, or a GGUF file converted once and cached."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from specsteer._errors import InvalidInputError, ModelLoadError
from specsteer._hf import quiet_progress_bars
from specsteer.backends._base import ModelBackend
from specsteer.backends._gguf import check_gguf, derived_dir, partial, publish_dir
from specsteer.backends._hftext import HFTokenizerText

__all__ = ["TransformersBackend"]

logger = logging.getLogger(__name__)

#: End-of-turn markers used by common chat templates; any present in a vocabulary ends generation.
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "</s>", "<eos>")


class TransformersBackend(HFTokenizerText, ModelBackend):
    """A ``transformers`` causal LM with its tokenizer, run on the CPU (or ``device``).

    Args:
        model: a loaded ``PreTrainedModel`` for causal LM.
        tokenizer: its tokenizer (a chat template is used when it has one).
        name: a short name for results.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self._fingerprint: str | None = None
        self.name = name or str(getattr(model.config, "_name_or_path", "") or "model")
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context_limit = int(limit) if isinstance(limit, int) else None
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._device = next(model.parameters()).device
        out_emb = model.get_output_embeddings()
        self._vocab = int(out_emb.weight.shape[0]) if out_emb is not None else len(tokenizer)
        eos: set[int] = set()
        for ids in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(ids, int):
                eos.add(ids)
            elif isinstance(ids, list | tuple):
                eos.update(int(i) for i in ids)
        vocab = tokenizer.get_vocab()
        eos.update(vocab[t] for t in _END_OF_TURN if t in vocab)
        self._eos = frozenset(i for i in eos if 0 <= i < self._vocab)

    @property
    def runtime(self) -> str:
        if self.model is None:
            return "transformers"
        return f"transformers ({str(self.model.dtype).removeprefix('torch.')})"

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.float32,
        attn_implementation: str | None = None,
    ) -> TransformersBackend:
        """Load a local HF model folder (never a hub download).

        Args:
            path: the folder holding ``config.json``, the weights and the tokenizer.
            dtype: weight dtype.
            attn_implementation: transformers' attention kernel (``"sdpa"``, ``"eager"``);
                ``None`` lets transformers choose.

        Raises:
            InvalidInputError: ``path`` is not a folder with a config.
            ModelLoadError: transformers could not load it.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise InvalidInputError(
                f"{folder} is not a local model folder (no config.json); pass the folder that "
                "holds config.json and the weights, or a .gguf file to from_gguf()"
            )
        try:
            with quiet_progress_bars():  # a local load: transformers' bar would only be noise
                tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    folder,
                    dtype=dtype,
                    local_files_only=True,
                    attn_implementation=attn_implementation,
                )
        except Exception as e:  # transformers raises many types here
            raise ModelLoadError(f"could not load the model in {folder}: {e}") from e
        return cls(model, tok, name=folder.name)

    @classmethod
    def from_gguf(
        cls,
        path: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> TransformersBackend:
        """Load a GGUF file, converting it to ``dtype`` weights once and caching them.

        The first load de-quantizes the file (tens of seconds); the converted weights are saved
        with safetensors under ``cache_dir`` (default ``$SPECSTEER_HOME/models``), so later
        loads take about a second.

        Raises:
            InvalidInputError: the file does not exist or is not a GGUF file.
            ModelLoadError: conversion failed.
        """
        gguf = check_gguf(path)
        suffix = "" if dtype == torch.float32 else "-" + str(dtype).removeprefix("torch.")
        target = derived_dir(gguf, cache_dir, suffix)
        if not (target / ".complete").is_file():
            cls._convert_gguf(gguf, target, dtype)
        backend = cls.from_pretrained(target, dtype=dtype)
        backend.name = name or gguf.stem
        return backend

    @staticmethod
    def _convert_gguf(gguf: Path, target: Path, dtype: torch.dtype) -> None:
        from safetensors.torch import save_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        logger.info("converting %s to %s weights (once)", gguf.name, dtype)
        tmp = partial(target)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            with quiet_progress_bars():  # the caller shows progress (a spinner, a log line)
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(
                    gguf.parent, gguf_file=gguf.name, dtype=dtype
                )
            # transformers refuses save_pretrained on a GGUF-loaded model; a plain state dict
            # plus the config without its quantization_config reloads with identical logits.
            model.config.__dict__.pop("quantization_config", None)
            model.config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))
            tok.save_pretrained(tmp)
            (tmp / ".complete").write_text(json.dumps({"source": str(gguf)}))
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelLoadError(f"could not convert {gguf}: {e}") from e
        publish_dir(tmp, target)

    # -- ModelBackend ----------------------------------------------------------------------------

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        return self.forward_tail(ids, cache, len(ids))

    def forward_tail(
        self, ids: Sequence[int], cache: Any | None, rows: int
    ) -> tuple[torch.Tensor, Any]:
        from transformers import DynamicCache

        if not ids:
            raise ValueError("forward needs at least one token")
        if cache is None:
            cache = DynamicCache(config=self.model.config)
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self._device)
        keep = {"logits_to_keep": rows} if rows < len(ids) else {}
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, use_cache=True, **{self._cache_kw: cache}, **keep)
        new_cache = getattr(out, "cache", None) or out.past_key_values
        return out.logits[0, -rows:].float().cpu(), new_cache

    def crop(self, cache: Any, length: int) -> Any | None:
        current = int(cache.get_seq_length())
        if length >= current:
            return cache
        try:
            cache.crop(length - current)
        except (RuntimeError, ValueError):
            # Sliding-window layers past their window cannot roll back: re-encode instead.
            return None
        return cache

    def close(self) -> None:
        self.model = None
