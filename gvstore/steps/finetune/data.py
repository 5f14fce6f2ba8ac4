"""Training files of the finetune step: read and check an export file line by line
(``load_data``), and turn its examples into trl's formats (``to_trl``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvstore.digest import PREFIX
from gvstore.errors import GvstoreError
from gvstore.io import json_lines, sha256_file
from gvstore.steps.finetune.config import METHODS


@dataclass(frozen=True)
class TrainingData:
    """Examples read from an export file, checked line by line."""

    path: Path
    digest: str
    examples: list[dict[str, Any]]
    """sft: ``{"messages": [...]}`` (user ... assistant); rpo: ``{"prompt", "chosen",
    "rejected"}`` strings."""


def _messages(line: dict[str, Any]) -> list[dict[str, str]] | str:
    """The conversation of an SFT line, or why it is not one."""
    if "messages" in line:
        msgs = line["messages"]
    elif "prompt" in line and "completion" in line:
        msgs = [{"role": "user", "content": line["prompt"]},
                {"role": "assistant", "content": line["completion"]}]
    else:
        return "expected a 'messages' list (gvstore export sft) or 'prompt' and 'completion'"
    if not isinstance(msgs, list) or len(msgs) < 2:
        return "'messages' must list at least a user and an assistant message"
    out = []
    for i, m in enumerate(msgs):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            return f"message {i} needs string 'role' and 'content'"
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant" or not out[-1]["content"].strip():
        return "the last message must be a non-empty assistant answer"
    if not any(m["role"] == "user" for m in out[:-1]):
        return "no user message before the answer"
    return out


def _pair(line: dict[str, Any]) -> dict[str, str] | str:
    missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(line.get(k), str)]
    if missing:
        return (f"expected string fields prompt, chosen, rejected (gvstore export pairs); "
                f"missing or not a string: {', '.join(missing)}")
    if not line["chosen"].strip():
        return "empty chosen answer"
    return {"prompt": line["prompt"], "chosen": line["chosen"], "rejected": line["rejected"]}


def load_data(method: str, path: Path) -> TrainingData:
    """Read and check a training file: ``sft`` lines or ``rpo`` pairs. Blank lines are
    allowed; any other line that is not a valid example is an error naming its number."""
    if method not in METHODS:
        raise GvstoreError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    path = Path(path)
    if not path.is_file():
        raise GvstoreError(f"training file {path} does not exist (write one with "
                           f"`gvstore export {'sft' if method == 'sft' else 'pairs'}`)")
    examples: list[dict[str, Any]] = []
    for n, line in json_lines(path, not_json="not JSON ({msg})"):
        ex: dict[str, Any] | str
        if method == "sft":
            got = _messages(line)
            ex = {"messages": got} if isinstance(got, list) else got
        else:
            ex = _pair(line)
        if isinstance(ex, str):
            raise GvstoreError(f"{path}:{n}: {ex}")
        examples.append(ex)
    if not examples:
        raise GvstoreError(f"training file {path} holds no examples (did the filter keep "
                           "nothing?)")
    return TrainingData(path, PREFIX + sha256_file(path), examples)


def to_trl(method: str, examples: list[dict[str, Any]], *, chat: bool) -> list[dict[str, Any]]:
    """Examples in trl's formats. ``chat``: conversational prompt/completion (SFT) or
    prompt/chosen/rejected (DPO) message lists, rendered by the chat template; else raw text,
    the prompt as the back end sends it to a base model."""
    out: list[dict[str, Any]] = []
    for ex in examples:
        if method == "sft":
            msgs = ex["messages"]
            if chat:
                out.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
            else:
                out.append({"prompt": "\n\n".join(m["content"] for m in msgs[:-1]),
                            "completion": msgs[-1]["content"]})
        elif chat:
            out.append({"prompt": [{"role": "user", "content": ex["prompt"]}],
                        "chosen": [{"role": "assistant", "content": ex["chosen"]}],
                        "rejected": [{"role": "assistant", "content": ex["rejected"]}]})
        else:
            out.append(dict(ex))
    return out
