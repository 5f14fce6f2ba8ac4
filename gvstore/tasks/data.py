"""Where task data comes from, where it is looked for, and how it is checked.

Every known file has a SHA-256 digest and an official source. A file is looked for, in order:

1. a path the caller gives (a file, or a folder laid out like ``data/raw``),
2. ``$GVSTORE_DATA/<dataset>/<file>`` (a folder laid out like ``data/raw``; tests and CI use it),
3. ``data/raw/<dataset>/<file>`` under the working directory (where ``gvstore data fetch`` puts it).

A file found in a data folder must match its digest; a file the caller names directly is checked
too unless ``verify=False`` (for a deliberately edited copy). A missing file is a
``GvstoreError`` that names the paths tried and the command that fetches it.

``fetch`` downloads from the official source with ``urllib`` (any URL scheme it knows, so a
``file://`` mirror works), derives the two exemplar files from the lm-evaluation-harness sources
they were transcribed from, checks the digest and places the file atomically
(``gvstore.io.write_atomic``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gvstore.errors import GvstoreError
from gvstore.io import json_lines, sha256_file, write_atomic

ENV_VAR = "GVSTORE_DATA"
DEFAULT_RAW = Path("data/raw")

_GSM8K = (
    "https://raw.githubusercontent.com/openai/grade-school-math/"
    "3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data/"
)
_LM_EVAL = (
    "https://raw.githubusercontent.com/EleutherAI/lm-evaluation-harness/"
    "4e7e0d47f33bc71070c1d38394bafbb52b117163/lm_eval/tasks/"
)
_MATH = (
    "https://raw.githubusercontent.com/ZubinGou/math-evaluation-harness/"
    "db77bc6bb2a17c90ed2d63e88ebd8c40a82858c5/data/"
)
_NQ = (
    "https://raw.githubusercontent.com/google-research-datasets/natural-questions/"
    "fb26a3073b1fe636c97302890a27b491d6530130/nq_open/"
)


@dataclass(frozen=True)
class DataFile:
    """One known file: its place in the dataset folder, digest, size and official source.

    ``derive`` names how the file is made from what ``url`` serves: ``""`` for a byte-for-byte
    download, ``"lm_eval_yaml"`` (the ``fewshot_config.samples`` of an lm-eval task YAML,
    ``target`` saved as ``answer``), ``"lm_eval_py"`` (the list returned by
    ``list_fewshot_samples`` in an lm-eval ``utils.py``).
    """

    rel: str
    sha256: str
    size: int
    url: str
    derive: str = ""


DATASETS: dict[str, tuple[DataFile, ...]] = {
    "gsm8k": (
        DataFile("test.jsonl",
                 "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
                 749738, _GSM8K + "test.jsonl"),
        DataFile("train.jsonl",
                 "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
                 4166206, _GSM8K + "train.jsonl"),
        DataFile("cot_exemplars.jsonl",
                 "3d01cf15b28754fc61d042980b85acad458d1ddc140f65f946491eb42bf5b4d5",
                 2317, _LM_EVAL + "gsm8k/gsm8k-cot.yaml", "lm_eval_yaml"),
    ),
    "math": (
        DataFile("test.jsonl",
                 "3371949f33dd702d04b43fddd7d53a028de0aaca0e76abb1b875a050297b3aa4",
                 4101364, _MATH + "math/test.jsonl"),
        DataFile("math500/test.jsonl",
                 "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
                 446564, _MATH + "math_oai/test.jsonl"),
        DataFile("minerva_exemplars.jsonl",
                 "c171d4e81e524d32b8dd1b9d64f95be8335974622f4c0ec0ca538371f71175eb",
                 1891, _LM_EVAL + "minerva_math/utils.py", "lm_eval_py"),
    ),
    "nq_open": (
        DataFile("NQ-open.dev.jsonl",
                 "f15567f38099f3615f5b8a685c0aef449c11ad90d3da3735e8d1b98115b40616",
                 391316, _NQ + "NQ-open.dev.jsonl"),
        DataFile("NQ-open.efficientqa.dev.1.1.jsonl",
                 "0ad45e2fa9fd32d10b3cf08c63e6d22f97ba1a0ce44ea98040f4c18bce7e268d",
                 194998, _NQ + "NQ-open.efficientqa.dev.1.1.jsonl"),
    ),
}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def data_file(name: str, rel: str) -> DataFile:
    """The table entry of one file (``GvstoreError`` if the dataset or file is unknown)."""
    if name not in DATASETS:
        raise GvstoreError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")
    for f in DATASETS[name]:
        if f.rel == rel:
            return f
    known = ", ".join(f.rel for f in DATASETS[name])
    raise GvstoreError(f"dataset {name!r} has no file {rel!r}; known: {known}")


_checked: dict[tuple[str, int, int], str] = {}


def _digest_cached(path: Path) -> str:
    st = path.stat()
    k = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    got = _checked.get(k)
    if got is None:
        got = _checked[k] = sha256_file(path)
    return got


def search_roots(path: Path | str | None = None) -> list[Path]:
    """The data folders looked in, in order (a caller's folder, ``$GVSTORE_DATA``, data/raw)."""
    roots: list[Path] = []
    if path is not None and Path(path).is_dir():
        roots.append(Path(path))
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env))
    roots.append(DEFAULT_RAW)
    return roots


def candidates(name: str, rel: str, path: Path | str | None = None) -> list[Path]:
    """Every path where ``<name>/<rel>`` is looked for, in order."""
    data_file(name, rel)
    out: list[Path] = []
    if path is not None and not Path(path).is_dir():
        out.append(Path(path))
    for root in search_roots(path):
        # a caller's folder may be the dataset folder itself or a data root above it
        if path is not None and root == Path(path):
            out.append(root / rel)
        out.append(root / name / rel)
    return list(dict.fromkeys(out))


def locate(name: str, rel: str, path: Path | str | None = None, *, verify: bool = True) -> Path:
    """The checked path of one known file, or a ``GvstoreError`` saying how to get it."""
    entry = data_file(name, rel)
    tried = candidates(name, rel, path)
    for p in tried:
        if not p.is_file():
            continue
        direct = path is not None and p == Path(path)
        if verify or not direct:
            got = _digest_cached(p)
            if got != entry.sha256:
                hint = (" (pass verify=False to use an edited copy on purpose)" if direct
                        else f"; delete it and run `gvstore data fetch {name}`")
                raise GvstoreError(
                    f"{p}: sha256 {got[:16]}... does not match the known digest "
                    f"{entry.sha256[:16]}... of {name}/{rel}{hint}"
                )
        return p
    raise GvstoreError(
        f"missing data file {name}/{rel}: tried {', '.join(str(t) for t in tried)}. "
        f"Run `gvstore data fetch {name}` (downloads into {DEFAULT_RAW}/{name}/), "
        f"or set {ENV_VAR} to a folder holding {name}/{rel}, or pass its path."
    )


def data_dir(path: Path | str | None) -> str | None:
    """The folder to look for companion files (exemplars) in, given a caller's file or folder."""
    if path is None:
        return None
    p = Path(path)
    return str(p if p.is_dir() else p.parent)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped; a bad line is an error)."""
    for _, obj in json_lines(path):
        yield obj


def load_jsonl(name: str, rel: str, path: Path | str | None = None, *,
               verify: bool = True) -> list[dict[str, Any]]:
    return list(read_jsonl(locate(name, rel, path, verify=verify)))


# ---- status and fetching -------------------------------------------------------------------

@dataclass(frozen=True)
class FileStatus:
    name: str
    rel: str
    path: str | None
    ok: bool
    problem: str | None


def status(path: Path | str | None = None) -> list[FileStatus]:
    """For every known file: where it is found and whether its digest is right."""
    out: list[FileStatus] = []
    for name in dataset_names():
        for entry in DATASETS[name]:
            found = next((p for p in candidates(name, entry.rel, path) if p.is_file()), None)
            if found is None:
                out.append(FileStatus(name, entry.rel, None, False, "missing"))
                continue
            got = _digest_cached(found)
            ok = got == entry.sha256
            out.append(FileStatus(name, entry.rel, str(found), ok,
                                  None if ok else f"sha256 {got[:16]}... is wrong"))
    return out


def _jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _yaml_load_any_tags(text: str) -> Any:
    """PyYAML's safe loader, reading unknown tags (``!function ...``) as null."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def unknown(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> None:
        return None

    Loader.add_multi_constructor("!", unknown)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def derive_lm_eval_yaml(raw: bytes) -> bytes:
    """``fewshot_config.samples`` of an lm-eval task YAML as JSON lines (question, answer)."""
    doc = _yaml_load_any_tags(raw.decode("utf-8"))
    try:
        samples = doc["fewshot_config"]["samples"]
        rows = [{"question": s["question"], "answer": s["target"]} for s in samples]
    except (KeyError, TypeError) as exc:
        raise GvstoreError(f"no fewshot_config.samples with question/target: {exc}") from exc
    return _jsonl_bytes(rows)


def derive_lm_eval_py(raw: bytes) -> bytes:
    """The literal list returned by ``list_fewshot_samples`` in an lm-eval ``utils.py``.

    The source is parsed with ``ast``, never executed; only a literal return value is read.
    """
    tree = ast.parse(raw.decode("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Return) and stmt.value is not None:
                    rows = ast.literal_eval(stmt.value)
                    keep = [{"problem": r["problem"], "solution": r["solution"]} for r in rows]
                    return _jsonl_bytes(keep)
    raise GvstoreError("no literal list_fewshot_samples() in the source")


DERIVERS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda raw: raw,
    "lm_eval_yaml": derive_lm_eval_yaml,
    "lm_eval_py": derive_lm_eval_py,
}


def _download(url: str, timeout: float) -> bytes:
    if not url.startswith(("https://", "http://", "file://")):
        raise GvstoreError(f"refusing to fetch {url!r}: only http(s) and file URLs")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - checked above
            data: bytes = resp.read()
            return data
    except OSError as exc:  # URLError is an OSError
        raise GvstoreError(f"cannot download {url}: {exc}") from exc


@dataclass(frozen=True)
class Fetched:
    rel: str
    path: str
    action: str  # "present" (already there, digest ok) or "downloaded"
    url: str


def fetch(
    name: str,
    dest: Path | str = DEFAULT_RAW,
    *,
    mirror: str | None = None,
    timeout: float = 60.0,
    on_file: Callable[[Fetched], None] | None = None,
) -> list[Fetched]:
    """Download every file of dataset ``name`` into ``<dest>/<name>/``, checked and atomic.

    ``mirror`` is a base URL laid out like ``data/raw`` (``<mirror>/<name>/<file>``, files
    already derived); without it the official sources are used. A file already in place with
    the right digest is kept. A wrong digest is an error and nothing is placed.
    """
    if name not in DATASETS:
        raise GvstoreError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")
    out: list[Fetched] = []
    for entry in DATASETS[name]:
        target = Path(dest) / name / entry.rel
        if mirror is not None:
            url, derive = f"{mirror.rstrip('/')}/{name}/{entry.rel}", ""
        else:
            url, derive = entry.url, entry.derive
        if target.is_file() and sha256_file(target) == entry.sha256:
            done = Fetched(entry.rel, str(target), "present", url)
        else:
            data = DERIVERS[derive](_download(url, timeout))
            got = hashlib.sha256(data).hexdigest()
            if got != entry.sha256:
                raise GvstoreError(
                    f"{url}: sha256 {got[:16]}... does not match the known digest "
                    f"{entry.sha256[:16]}... of {name}/{entry.rel}; nothing was written"
                )
            write_atomic(target, data)
            done = Fetched(entry.rel, str(target), "downloaded", url)
        out.append(done)
        if on_file is not None:
            on_file(done)
    return out
