"""Tanimoto kernels of packed fingerprints (SNN, IntDiv, GuacaMol nearest neighbours) and the cosine
similarity of count dictionaries (Frag, Scaf).

On the CPU the Tanimoto intersections are sparse-dense products (:func:`_tanimoto_reduce`), split
over worker processes by columns for large sets (:func:`_tanimoto`); on a GPU, dense products.
"""

from __future__ import annotations

import numpy as np

from molvae.metrics import _runner
from molvae.metrics._runner import _Runner, _torch_threads
from molvae.progress import progress_bar

ROW_TILE = 1024  # rows of one Tanimoto block (SNN: 4x): the block's intersections stay in the CPU cache
TANIMOTO_POOL_MIN = 3e8  # below this many pairs (about a second on one core) one process does the Tanimoto work

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def _popcounts(packed: np.ndarray) -> np.ndarray:
    """Bits set per row of packed fingerprints (int32)."""
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(packed).sum(axis=1, dtype=np.int32)
    return _POPCOUNT[packed].sum(axis=1, dtype=np.int32)


def _tanimoto_reduce(a: np.ndarray, b: np.ndarray, mode: str, weights: np.ndarray | None = None,
                     row_offset: int = 0, device: str = "cpu", col_block: int = 512) -> tuple:
    """Reduce the Tanimoto matrix between packed fingerprints ``a`` (r, bytes) and ``b`` (s, bytes).

    ``max``: per row of ``a`` the largest similarity to ``b`` (SNN). ``sums``: per row
    ``sum_j w_j T_ij`` and ``sum_j w_j T_ij^2`` (IntDiv). ``max_other``: like ``max`` but leaving out
    the pair (i, i + row_offset) (GuacaMol nearest-neighbour similarity within one set).
    Intersections are exact integers; the division is float32, like MOSES. Two empty fingerprints
    count as similarity 1, as in MOSES. On the CPU the intersections are sparse-dense products (each
    row of ``a`` sums the ~40 bit-rows of a bit-major block of ``b`` it has set: ``embedding_bag``,
    exact in fp16 up to 2048), and ``max`` needs no division per pair: within columns of equal
    popcount ``T`` grows with the intersection, so the largest intersection of each popcount group
    gives the row's best similarity in that group.
    """
    if device != "cpu":
        return _tanimoto_dense(a, b, mode, weights, row_offset, device, col_block=max(col_block, 8192))
    import torch

    pa_np, pb_all = _popcounts(a), _popcounts(b)
    order = np.argsort(pb_all, kind="stable")  # popcount groups are contiguous columns
    bs, pb_np = b[order], pb_all[order]
    dtype = torch.float16 if int(pa_np.max(initial=0)) <= 2048 else torch.float32  # exact integer sums
    tile = ROW_TILE if mode == "sums" else 4 * ROW_TILE  # max: fewer, larger fp16 blocks
    tiles = [(i, min(len(a), i + tile)) for i in range(0, len(a), tile)]
    bags = [_bags(a[i:j], pa_np[i:j]) for i, j in tiles]
    pa = torch.from_numpy(pa_np)
    if mode == "sums":
        w = torch.from_numpy(np.asarray(weights, dtype=np.float64)[order])
        acc = torch.zeros((2, len(a)), dtype=torch.float64)
        zero_union = bool((pa_np == 0).any() and (pb_np == 0).any())
    else:
        acc = torch.zeros(len(a), dtype=torch.float32)
    with _torch_threads(1):
        for start in range(0, len(bs), col_block):
            stop = min(len(bs), start + col_block)
            weight = _bit_major(bs[start:stop], dtype)
            for (i, j), (inputs, offsets) in zip(tiles, bags):
                inter = torch.nn.functional.embedding_bag(inputs, weight, offsets, mode="sum")
                if mode == "sums":
                    acc[:, i:j] += _sim_sums(inter, pa[i:j], pb_np[start:stop], w[start:stop], zero_union)
                    continue
                if mode == "max_other":
                    _exclude_self(inter, order[start:stop] - row_offset - i, j - i)
                acc[i:j] = torch.maximum(acc[i:j], _group_best(inter, pa[i:j], pb_np[start:stop]))
    if mode == "sums":
        return acc[0].numpy(), acc[1].numpy()
    return (acc.numpy().astype(np.float64),)


def _sim_sums(inter, pa, pb: np.ndarray, w, zero_union: bool):
    """(2, rows): ``sum_j w_j T_ij`` and ``sum_j w_j T_ij^2`` of one block, T in float32 as MOSES has it."""
    import torch

    sim = inter.float()
    union = (pa[:, None].float() + torch.from_numpy(pb)[None, :].float()).sub_(sim)  # exact: integers < 2**24
    empty = union == 0 if zero_union else None
    sim.div_(union.clamp_(min=1))
    if empty is not None:
        sim.masked_fill_(empty, 1.0)
    simd = sim.double()
    s1 = simd @ w
    return torch.stack([s1, simd.mul_(simd) @ w])


def _bags(a: np.ndarray, pa: np.ndarray) -> tuple:
    """The set bits of each row of packed ``a`` as ``embedding_bag`` inputs and offsets."""
    import torch

    _, bits = np.nonzero(np.unpackbits(a, axis=1))
    offsets = np.zeros(len(a), dtype=np.int64)
    np.cumsum(pa[:-1], out=offsets[1:])
    return torch.from_numpy(bits.astype(np.int64)), torch.from_numpy(offsets)


def _bit_major(b_block: np.ndarray, dtype):
    """A block of packed fingerprints as an ``embedding_bag`` weight: row k lists which columns have bit k."""
    import torch

    unpacked = torch.from_numpy(np.unpackbits(b_block, axis=1))
    weight = torch.empty((unpacked.shape[1], unpacked.shape[0]), dtype=dtype)
    return weight.copy_(unpacked.T)


def _exclude_self(inter, rows: np.ndarray, r: int) -> None:
    """Set the intersection of each column with its own row to -1 (never a best match)."""
    import torch

    cols = np.flatnonzero((rows >= 0) & (rows < r))
    if len(cols):
        inter[torch.from_numpy(rows[cols]), torch.from_numpy(cols)] = -1


def _group_best(inter, pa, pb: np.ndarray):
    """Per row the best float32 Tanimoto over columns sorted by popcount ``pb``."""
    import torch

    best = torch.zeros(inter.shape[0], dtype=torch.float32)
    cuts = np.flatnonzero(np.diff(pb)) + 1
    for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(pb)].tolist()):
        c = inter[:, lo:hi].amax(dim=1).to(torch.int32)
        union = pa + int(pb[lo]) - c
        sim = c.float() / union.clamp(min=1).float()
        sim = torch.where(union == 0, torch.ones_like(sim), sim)
        best = torch.maximum(best, sim)
    return best


def _tanimoto_dense(a: np.ndarray, b: np.ndarray, mode: str, weights: np.ndarray | None, row_offset: int,
                    device: str, col_block: int) -> tuple:
    """:func:`_tanimoto_reduce` on a GPU: dense float32 products of unpacked bits, column block by block."""
    import torch

    dev = torch.device(device)
    A = torch.from_numpy(np.unpackbits(a, axis=1))
    pa = A.sum(1, dtype=torch.int32).to(dev)
    A = A.to(dev, torch.float32)
    r = A.shape[0]
    if mode == "sums":
        s1 = torch.zeros(r, dtype=torch.float64, device=dev)
        s2 = torch.zeros(r, dtype=torch.float64, device=dev)
    else:
        best = torch.zeros(r, dtype=torch.float32, device=dev)
    for start in range(0, b.shape[0], col_block):
        B = torch.from_numpy(np.unpackbits(b[start:start + col_block], axis=1))
        pb = B.sum(1, dtype=torch.int32).to(dev)
        B = B.to(dev, torch.float32)
        inter = (A @ B.T).to(torch.int32)
        union = (pa[:, None] + pb[None, :]) - inter
        sim = inter.float() / union.clamp(min=1).float()
        if bool((union == 0).any()):
            sim = torch.where(union == 0, torch.ones_like(sim), sim)
        if mode == "max_other":
            i = torch.arange(r, device=dev)
            j = i + row_offset - start
            keep = (j >= 0) & (j < sim.shape[1])
            sim[i[keep], j[keep]] = 0.0
        if mode == "sums":
            w = torch.from_numpy(weights[start:start + col_block]).to(dev, torch.float64)
            simd = sim.double()
            s1 += simd @ w
            s2 += (simd * simd) @ w
        else:
            best = torch.maximum(best, sim.max(dim=1).values)
    if mode == "sums":
        return s1.cpu().numpy(), s2.cpu().numpy()
    return (best.cpu().numpy().astype(np.float64),)


def _task_tanimoto(args: tuple) -> tuple:
    """One column span of ``b``, all rows of ``a`` (``a`` and ``b`` are the same set for max_other)."""
    a_key, cols, b_key, mode, w_key = args
    b = _runner._SHARED[b_key][cols[0]:cols[1]]
    w = _runner._SHARED[w_key][cols[0]:cols[1]] if w_key else None
    return _tanimoto_reduce(_runner._SHARED[a_key], b, mode, w, row_offset=-cols[0])


def _tanimoto(runner: _Runner, a_key: str, b_key: str, mode: str, w_key: str | None, device: str,
              progress: bool, desc: str) -> tuple:
    """Tanimoto reductions of shared packed fingerprints (see :func:`_tanimoto_reduce`).

    On the CPU the columns (``b``) are split over the processes, every process taking all rows,
    so each fingerprint of ``b`` is unpacked once; the partial maxima or sums are then combined.
    """
    a, b = runner.shared[a_key], runner.shared[b_key]
    w = runner.shared[w_key] if w_key else None
    if device != "cpu":  # one process drives the GPU; row blocks bound its memory (~1 GB per temporary)
        parts = [_tanimoto_reduce(a[i:i + 8192], b, mode, w, row_offset=i, device=device, col_block=32768)
                 for i in range(0, len(a), 8192)]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))
    parallel = len(a) * len(b) >= TANIMOTO_POOL_MIN and runner.n_jobs > 1
    n_spans = 2 * runner.n_jobs if parallel else 1
    size = max(1, -(-len(b) // n_spans))
    spans = [(i, min(len(b), i + size)) for i in range(0, max(1, len(b)), size)]
    bar = progress_bar(len(b), desc=desc, unit="mol", disable=not progress, leave=False)
    try:
        parts = runner.map(_task_tanimoto, [(a_key, span, b_key, mode, w_key) for span in spans],
                           [y - x for x, y in spans], parallel=parallel, bar=bar)
    finally:
        bar.close()
    if mode == "sums":
        return tuple(np.sum([p[k] for p in parts], axis=0) for k in range(2))
    return (np.max([p[0] for p in parts], axis=0),)


def _cosine(ref: dict[str, int], gen: dict[str, int]) -> float | None:
    """MOSES ``cos_similarity`` of two count dictionaries, in float64 (no integer overflow)."""
    if not ref or not gen:
        return None
    keys = list(ref.keys() | gen.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))
