"""The ``transformers`` back end (CPU or GPU): batched sampling and log-likelihoods.

Sampling is batched with left padding. Reproducibility: each batch's RNG is seeded from the
seeds of its requests, so the same requests in the same batch layout give the same texts on
the same back end (the generate step keeps batch layouts fixed, so a resumed or repeated run
reproduces them). ``top_k=0`` is passed explicitly (recent transformers otherwise adds
``top_k=50`` on its own); fp32 on CPU (bf16 is slower on CPUs without bf16 instructions).
On CPU, torch runs ``threads`` threads (default ``$GVSTORE_THREADS``, else the CPUs this
process may use) with OpenMP's passive wait policy (``gvstore/backends/threads.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gvstore.backends import hf_text
from gvstore.backends.base import LoglikRequest, Sample, SampleRequest
from gvstore.backends.threads import cpu_threads, set_wait_policy
from gvstore.models import DEFAULT_MODELS_DIR, ModelSpec, load_hf, resolve
from gvstore.records import Sampling


def batch_seed(seeds: Sequence[int]) -> int:
    """One RNG seed for a batch, from its requests' seeds (order matters)."""
    h = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model: ModelSpec,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        models_dir: Path = DEFAULT_MODELS_DIR,
        threads: int | None = None,
    ) -> None:
        set_wait_policy()  # before torch's first import, if this is it
        import torch

        self.model = model
        self.batch_size = max(1, batch_size)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.threads = cpu_threads(threads)
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        self.dtype = dtype or ("float32" if self.device == "cpu" else "bfloat16")
        self.resolved = resolve(model, models_dir)
        self.digest = self.resolved.digest
        self.tokenizer, self.lm = load_hf(self.resolved, self.dtype, self.device)
        self.calls = 0  # requests answered (sample + loglik), for tests and summaries

    # ---- rendering -------------------------------------------------------------------------

    def render(self, prompt: str) -> str:
        """The text the model sees: through the chat template for instruct models."""
        return hf_text.render(self.tokenizer, self.model.kind, prompt)

    def _encode(self, text: str) -> list[int]:
        return hf_text.encode(self.tokenizer, self.model.kind, text)

    # ---- sampling --------------------------------------------------------------------------

    def sample(self, requests: Sequence[SampleRequest]) -> list[Sample]:
        return hf_text.sample_in_batches(requests, self.batch_size, self._sample_batch)

    def _sample_batch(self, reqs: Sequence[SampleRequest], sp: Sampling) -> list[Sample]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok([self.render(r.prompt) for r in reqs], return_tensors="pt", padding=True,
                  add_special_tokens=self.model.kind != "instruct").to(self.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": sp.max_tokens, "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        if sp.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=sp.temperature, top_p=sp.top_p,
                              top_k=sp.top_k)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sp.stop:
            gen_kwargs.update(stop_strings=list(sp.stop), tokenizer=tok)
        torch.manual_seed(batch_seed([r.seed for r in reqs]))
        with torch.inference_mode():
            seqs = self.lm.generate(**enc, **gen_kwargs)
        self.calls += len(reqs)
        new = seqs[:, enc["input_ids"].shape[1]:].tolist()
        return [self._finish(row, sp) for row in new]

    def _finish(self, row: list[int], sp: Sampling) -> Sample:
        return hf_text.finish(self.tokenizer, row, sp)

    # ---- log-likelihoods -------------------------------------------------------------------

    def loglik(self, requests: Sequence[LoglikRequest]) -> list[tuple[float, int]]:
        """Sum of log p(continuation tokens | rendered prompt), tokenised apart so the
        boundary is exact; a multi-token continuation counts all its tokens."""
        import torch

        out: list[tuple[float, int]] = []
        pad = self.tokenizer.pad_token_id
        for i in range(0, len(requests), self.batch_size):
            chunk = requests[i:i + self.batch_size]
            rows = []
            for r in chunk:
                p = self._encode(self.render(r.prompt))
                c = self.tokenizer(r.continuation, add_special_tokens=False)["input_ids"]
                rows.append((p, c))
            width = max(len(p) + len(c) for p, c in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, (p, c) in enumerate(rows):  # right padding: positions stay 0..len-1
                seq = p + c
                ids[k, :len(seq)] = torch.tensor(seq)
                mask[k, :len(seq)] = 1
            with torch.inference_mode():
                logits = self.lm(input_ids=ids.to(self.device),
                                 attention_mask=mask.to(self.device)).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
            for k, (p, c) in enumerate(rows):
                total = 0.0
                for j, t in enumerate(c):
                    total += float(logp[k, len(p) + j - 1, t])
                out.append((total, len(c)))
            self.calls += len(chunk)
        return out

    def close(self) -> None:
        self.lm = None
