"""GRU4Rec (Hidasi et al. 2016): a GRU over the items of a session, predicting the next item, trained with PyTorch.

Each event's item is embedded and fed to a (stack of) GRU cell(s); the hidden state after an event scores every
item as the next one, ``ŝ = h · Wᵢ + bᵢ`` (a separate output embedding and bias per item). Training follows the
paper's *session-parallel mini-batches*: ``batch_size`` sessions run side by side, one event at a time (input
item -> next item of the same session); when a slot's session ends, the next session takes the slot and its
hidden state is reset to zero. The hidden state carries over between steps, detached (no gradient flows back
through earlier steps).

Losses (``loss``):

- ``ce``: cross-entropy over a full softmax of all items;
- ``bpr-max`` (Hidasi & Karatzoglou 2018): the negatives of each example are the other targets of its
  mini-batch plus ``n_negatives`` items sampled for the whole batch (by popularity^0.5); the loss is
  ``-log Σⱼ sⱼ σ(r_target − rⱼ) + λ Σⱼ sⱼ rⱼ²`` with ``sⱼ`` the softmax of the negatives' scores and ``λ``
  ``bpr_max_reg``.

Sessions: the event log's session ids when it has them; otherwise a user's events split where
``session_gap_minutes`` pass without an event (when there are timestamps); otherwise a user's whole history is
one session (also when no gap-split session holds two events). Only events of positive weight are steps (a
"dislike" is not a step).

Serving runs the GRU in numpy over the query's current session (``HistoryQuery.session_items`` when given; else
the query's events after its last gap of ``session_gap_minutes``; else its last ``max_len`` items) and scores
every item with one matrix product: torch is needed only to train.

References
----------
Hidasi, Karatzoglou, Baltrunas and Tikk, "Session-based Recommendations with Recurrent Neural Networks",
ICLR 2016. Hidasi and Karatzoglou, "Recurrent Neural Networks with Top-k Gains for Session-based
Recommendations", CIKM 2018 (bpr-max, additional sampled negatives).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.special import expit

from recsmith.data.training import EventLog, TrainingData
from recsmith.errors import DataError
from recsmith.recipes.base import Choice, FloatRange, IntRange
from recsmith.recipes.options import FitOptions
from recsmith.recipes.query import HistoryQuery
from recsmith.recipes.sequential import SequentialRecipe
from recsmith.recipes.torch_training import TORCH_TAGS, Batch, TorchParams, TorchRecipe

logger = logging.getLogger(__name__)

SAMPLE_ALPHA = 0.5
"""bpr-max's extra negatives are drawn with probability proportional to popularity to this power."""
FORWARD_ROWS = 1024
"""Queries per block of the numpy forward."""
RULE_NONE, RULE_GAP, RULE_IDS = 0, 1, 2
"""How training split sessions: whole histories, inactivity gaps, the log's session ids."""


class GRU4RecParams(TorchParams):
    """Params of :class:`GRU4Rec`."""

    factors: int = Field(default=100, ge=1)
    """Hidden units of each GRU layer (and the size of the output item embeddings)."""

    layers: int = Field(default=1, ge=1, le=4)
    """Stacked GRU layers."""

    embedding: int = Field(default=0, ge=0)
    """Size of the input item embedding (0: ``factors``)."""

    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    """Dropout on the input embedding and on each layer's output (training only)."""

    loss: Literal["ce", "bpr-max"] = "ce"
    """``ce``: full softmax cross-entropy; ``bpr-max``: in-batch (plus sampled) negatives, Hidasi 2018."""

    n_negatives: int = Field(default=0, ge=0)
    """bpr-max: items sampled (popularity^0.5) per step, shared by the batch, on top of its other targets."""

    bpr_max_reg: float = Field(default=1.0, ge=0.0)
    """bpr-max: weight of the softmax-weighted squared scores of the negatives (the 2018 paper's λ)."""

    session_gap_minutes: float = Field(default=30.0, gt=0.0)
    """Without session ids: minutes without an event that end a session (when the events have times)."""

    max_len: int = Field(default=50, ge=1)
    """The most recent events of a history read at inference (and kept per training user)."""

    batch_size: int = Field(default=64, ge=1)
    """Sessions running in parallel in a mini-batch."""

    lr: float = Field(default=0.005, gt=0.0)
    """Initial learning rate (Adam)."""

    epochs: int = Field(default=10, ge=1)
    """Most passes over the training sessions (early stopping may end sooner)."""

    reg: float = Field(default=0.0, ge=0.0)
    """L2 penalty on the input and output embedding rows of each step."""

    search_space = {
        "factors": IntRange(low=32, high=256, log=True),
        "lr": FloatRange(low=1e-3, high=2e-2, log=True),
        "dropout": FloatRange(low=0.0, high=0.5),
        "batch_size": Choice(choices=(32, 64, 128, 256)),
        "epochs": IntRange(low=3, high=20),
        "bpr_max_reg": FloatRange(low=0.1, high=2.0, log=True),
    }


# ------------------------------------------------------------------------------ sessions (numpy)
def session_starts(users: np.ndarray, timestamps: np.ndarray | None = None, sessions: np.ndarray | None = None,
                   gap_seconds: float | None = None) -> np.ndarray:
    """Where sessions start in events sorted by user (time order within a user): ``bool`` per event.

    A session starts at a user's first event and wherever the session id changes (``sessions``, codes; ``-1``
    events fall back to the gap rule); without session ids, wherever more than ``gap_seconds`` passed since the
    user's previous event (when ``timestamps`` and ``gap_seconds`` are given); otherwise only at the first.

    Parameters
    ----------
    users : numpy.ndarray
        Each event's user, events grouped by user.
    timestamps : numpy.ndarray, optional
        Epoch seconds of each event.
    sessions : numpy.ndarray, optional
        Session codes of each event (-1: none).
    gap_seconds : float, optional
        The inactivity that ends a session.

    Returns
    -------
    numpy.ndarray
        ``bool[len(users)]``.

    Examples
    --------
    >>> session_starts(np.array([0, 0, 0, 1]), np.array([0, 60, 4000, 10]), gap_seconds=1800).tolist()
    [True, False, True, True]
    """
    n = len(users)
    start = np.ones(n, dtype=bool)
    if n < 2:
        return start
    same_user = users[1:] == users[:-1]
    gap = np.zeros(n - 1, dtype=bool)
    if timestamps is not None and gap_seconds is not None:
        gap = np.diff(np.asarray(timestamps, dtype=np.int64)) > gap_seconds
    if sessions is not None:
        sessions = np.asarray(sessions)
        untracked = (sessions[1:] < 0) & (sessions[:-1] < 0)
        split = np.where(untracked, gap, sessions[1:] != sessions[:-1])
    else:
        split = gap
    start[1:] = ~same_user | split
    return start


def current_session(query: HistoryQuery, gap_seconds: float | None, max_len: int | None) -> np.ndarray:
    """The items of a query's current session, oldest first (unknown ``-1`` items dropped), at most the last
    ``max_len``: its ``session_items`` when given and not empty; else, with ``timestamps`` and ``gap_seconds``,
    its events after the last gap longer than ``gap_seconds``; else all its items."""
    if query.session_items is not None and (query.session_items >= 0).any():
        items = query.session_items[query.session_items >= 0]
    else:
        known = query.items >= 0
        items = query.items[known]
        if query.timestamps is not None and gap_seconds is not None and len(items) > 1:
            times = np.asarray(query.timestamps, dtype=np.int64)[known]
            cuts = np.flatnonzero(np.diff(times) > gap_seconds)
            if len(cuts):
                items = items[cuts[-1] + 1:]
    return items if max_len is None else items[-max_len:]


def _has_pair(starts: np.ndarray) -> bool:
    """Whether some session (of the ``starts`` mask) holds two or more events."""
    return bool(len(starts) > 1 and (~starts[1:]).any())


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(total, dtype=np.int64) + offsets


# ------------------------------------------------------------------------------ the torch module
def _build_module(torch: Any, n_items: int, factors: int, embedding: int, layers: int, dropout: float,
                  sparse_input: bool, sparse_output: bool) -> Any:
    nn = torch.nn

    class GRU4RecModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_embedding = nn.Embedding(n_items, embedding, sparse=sparse_input)
            self.cells = nn.ModuleList([nn.GRUCell(embedding if layer == 0 else factors, factors)
                                        for layer in range(layers)])
            self.out_item = nn.Embedding(n_items, factors, sparse=sparse_output)
            self.out_bias = nn.Embedding(n_items, 1, sparse=sparse_output)
            self.drop = nn.Dropout(dropout)
            with torch.no_grad():
                nn.init.xavier_uniform_(self.item_embedding.weight)
                nn.init.xavier_uniform_(self.out_item.weight)
                self.out_bias.weight.zero_()

        def step(self, items: Any, hidden: Any) -> tuple[Any, Any]:
            """One event: ``(new hidden [layers, b, H], top layer's output after dropout [b, H])``."""
            x = self.drop(self.item_embedding(items))
            states = []
            for layer, cell in enumerate(self.cells):
                x = cell(x, hidden[layer])
                states.append(x)
                if layer < len(self.cells) - 1:
                    x = self.drop(x)
            return torch.stack(states), self.drop(x)

        def logits(self, top: Any, items: Any = None) -> Any:
            """Scores of all items (``items`` None) or of the columns ``items``: ``[b, n]``."""
            if items is None:
                return top @ self.out_item.weight.T + self.out_bias.weight[:, 0]
            return top @ self.out_item(items).T + self.out_bias(items)[:, 0]

    return GRU4RecModule()


class GRU4Rec(SequentialRecipe, TorchRecipe):
    """Session-based recommendation with a GRU over the current session (see the module docstring)."""

    name = "gru4rec"
    Params: ClassVar[type[GRU4RecParams]] = GRU4RecParams
    tags = dataclasses.replace(TORCH_TAGS, sequential=True, needs_timestamps=False)
    quantized_arrays = ("in_proj", "out_item")

    # -------------------------------------------------------------------------------- training
    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self._keep_sequences(data)
        TorchRecipe._fit(self, data, options)

    @property
    def _gap_seconds(self) -> float:
        return float(self.params.session_gap_minutes) * 60.0

    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        events = data.events
        keep = events.weights > 0
        log: EventLog = events if keep.all() else events.take(np.flatnonzero(keep))
        if not len(log):
            raise DataError("the gru4rec recipe needs events of positive weight")
        _, positions = log.by_user(data.n_users)
        users = log.users[positions]
        stamps = None if log.timestamps is None else log.timestamps[positions]
        sessions = None if log.sessions is None else log.sessions[positions]
        self._rule = RULE_IDS if sessions is not None else RULE_GAP if stamps is not None else RULE_NONE
        starts = session_starts(users, stamps, sessions, self._gap_seconds)
        if self._rule == RULE_GAP and not _has_pair(starts):
            logger.warning("gru4rec: no session of %g minutes holds two events; each user's history is one "
                           "session", self.params.session_gap_minutes)
            self._rule = RULE_NONE
            starts = session_starts(users)
        self._items = np.asarray(log.items[positions], dtype=np.int64)
        self._last_session = self._last_session_offsets(users, starts, data.n_users)
        begin = np.flatnonzero(starts)
        lengths = np.diff(np.r_[begin, len(users)])
        long_enough = lengths >= 2  # a session of one event has no next item
        self._session_begin, self._session_steps = begin[long_enough], lengths[long_enough] - 1
        if not len(self._session_begin):
            raise DataError("the gru4rec recipe needs sessions of two or more events")
        popularity = np.bincount(self._items, minlength=data.n_items).astype(np.float64) ** SAMPLE_ALPHA
        self._sample_cdf = np.cumsum(popularity / popularity.sum())
        self._n_items = data.n_items
        self._h = None
        return {"session": np.arange(len(self._session_begin), dtype=np.int64)}

    def _last_session_offsets(self, users: np.ndarray, starts: np.ndarray, n_users: int) -> np.ndarray:
        """Where each user's last session starts within the sequence :meth:`_keep_sequences` kept (its last
        ``max_len`` positive events)."""
        index = np.where(starts, np.arange(len(users)), 0)
        last_start = np.maximum.accumulate(index) if len(index) else index
        counts = np.bincount(users, minlength=n_users)
        ends = np.cumsum(counts)
        out = np.zeros(n_users, dtype=np.int64)
        has = counts > 0
        kept = np.minimum(counts, self.params.max_len)
        out[has] = np.maximum(last_start[ends[has] - 1] - (ends[has] - kept[has]), 0)
        return out

    def _module(self, torch: Any) -> Any:
        p = self.params
        sparse = self._sparse(2 * self._n_items)
        return _build_module(torch, self._n_items, p.factors, p.embedding or p.factors, p.layers, p.dropout,
                             sparse, sparse and p.loss == "bpr-max")

    def _negatives(self, count: int, rng: np.random.Generator) -> np.ndarray:
        drawn = np.searchsorted(self._sample_cdf, rng.random(count), side="right")
        return np.minimum(drawn, self._n_items - 1).astype(np.int64)

    def _batches(self, examples: Batch, rows: np.ndarray, rng: np.random.Generator) -> Iterator[Batch]:
        """Session-parallel steps over the sessions at ``rows`` (in that order): each step holds, for every
        busy slot, its input item, its target (the session's next item), the slot and whether the slot's
        session starts there (its hidden state is then reset)."""
        sessions = examples["session"][rows]
        steps = self._session_steps[sessions]
        slots = min(self.params.batch_size, len(sessions))
        free = [(0, slot) for slot in range(slots)]
        first = np.empty(len(sessions), dtype=np.int64)
        slot_of = np.empty(len(sessions), dtype=np.int64)
        for s, length in enumerate(steps.tolist()):  # the next session takes the slot that frees first
            time, slot = heapq.heappop(free)
            first[s], slot_of[s] = time, slot
            heapq.heappush(free, (time + length, slot))
        offset = _ranges(np.zeros(len(sessions), dtype=np.int64), steps)
        session_of = np.repeat(np.arange(len(sessions)), steps)
        time = first[session_of] + offset
        slot = slot_of[session_of]
        order = np.lexsort((slot, time))
        time, slot, offset, session_of = time[order], slot[order], offset[order], session_of[order]
        position = self._session_begin[sessions][session_of] + offset
        bounds = np.flatnonzero(np.diff(time)) + 1
        cuts = np.r_[0, bounds, len(time)]
        n_neg = self.params.n_negatives if self.params.loss == "bpr-max" else 0
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            step = {"input": self._items[position[a:b]], "target": self._items[position[a:b] + 1],
                    "slot": slot[a:b], "reset": offset[a:b] == 0}
            if n_neg:
                step["negatives"] = self._negatives(n_neg, rng)
            yield step

    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        """A validation batch: the sessions' items, padded on the right with -1 (``[b, longest]``)."""
        sessions = examples["session"]
        lengths = self._session_steps[sessions] + 1
        width = int(lengths.max()) if len(lengths) else 1
        seq = np.full((len(sessions), width), -1, dtype=np.int64)
        for row, (begin, length) in enumerate(zip(self._session_begin[sessions], lengths, strict=True)):
            seq[row, :length] = self._items[begin:begin + length]
        batch = {"seq": seq}
        if self.params.loss == "bpr-max" and self.params.n_negatives:
            batch["negatives"] = self._negatives(self.params.n_negatives, rng)
        return batch

    def _step_loss(self, module: Any, top: Any, target: Any, negatives: Any, torch: Any) -> tuple[Any, Any]:
        """``(sum of the losses, sum of the squared embedding rows)`` of one step's examples."""
        if self.params.loss == "ce":
            logits = module.logits(top)
            loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
            rows = module.out_item.weight[target]
        else:
            columns = target if negatives is None else torch.cat([target, negatives])
            scores = module.logits(top, columns)  # [b, b + n]
            positive = scores.diagonal()
            mask = columns[None, :] != target[:, None]  # the other targets (not the same item) and samples
            has = mask.any(dim=1)
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
            weights = torch.where(mask, weights, torch.zeros_like(weights))
            ranked = (weights * torch.sigmoid(positive[:, None] - scores)).sum(dim=1)
            penalty = (weights * scores.pow(2)).sum(dim=1)
            per_row = -torch.log(ranked + 1e-24) + self.params.bpr_max_reg * penalty
            loss = torch.where(has, per_row, torch.zeros_like(per_row)).sum()
            rows = module.out_item(target)
        return loss, rows.pow(2).sum()

    def _loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        if "seq" in b:
            return self._sequence_loss(module, b, torch)
        p = self.params
        slot, inputs, target = b["slot"], b["input"], b["target"]
        if self._h is None or self._h.device != slot.device:
            self._h = torch.zeros(p.layers, p.batch_size, p.factors, device=slot.device)
        hidden = self._h[:, slot] * (~b["reset"]).to(self._h.dtype)[None, :, None]
        states, top = module.step(inputs, hidden)
        self._h[:, slot] = states.detach()
        loss, l2 = self._step_loss(module, top, target, b.get("negatives"), torch)
        l2 = l2 + module.item_embedding(inputs).pow(2).sum()
        size = len(target)
        return loss / size, l2 / size

    def _sequence_loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        """The mean loss of every next-item step of whole sessions (validation), from a zero state."""
        seq = b["seq"]
        hidden = torch.zeros(self.params.layers, len(seq), self.params.factors, device=seq.device)
        total, count = torch.zeros((), device=seq.device), 0
        for t in range(seq.shape[1] - 1):
            live = seq[:, t + 1] >= 0
            if not bool(live.any()):
                break
            states, top = module.step(seq[:, t].clamp(min=0), hidden)
            hidden = states
            loss, _ = self._step_loss(module, top[live], seq[live, t + 1], b.get("negatives"), torch)
            total = total + loss
            count += int(live.sum())
        return total / max(count, 1), torch.zeros((), device=seq.device)

    # -------------------------------------------------------------------------------- export
    def _export(self, module: Any, torch: Any) -> None:
        def array(tensor: Any) -> np.ndarray:
            return np.ascontiguousarray(tensor.detach().cpu().numpy().astype(np.float32))

        first = module.cells[0]
        arrays: dict[str, np.ndarray] = {
            "in_proj": np.ascontiguousarray(array(module.item_embedding.weight) @ array(first.weight_ih).T
                                            + array(first.bias_ih)),
            "out_item": array(module.out_item.weight), "out_bias": array(module.out_bias.weight)[:, 0],
            "n_layers": np.asarray([len(module.cells)], dtype=np.int64),
            "session_rule": np.asarray([self._rule], dtype=np.int64),
            "last_session": self._last_session,
        }
        for layer, cell in enumerate(module.cells):
            arrays[f"hh_w{layer}"], arrays[f"hh_b{layer}"] = array(cell.weight_hh), array(cell.bias_hh)
            if layer:
                arrays[f"ih_w{layer}"], arrays[f"ih_b{layer}"] = array(cell.weight_ih), array(cell.bias_ih)
        self.arrays_ = arrays
        self._set_arrays(dict(arrays))

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.in_proj_ = np.ascontiguousarray(arrays["in_proj"], dtype=np.float32)
        self.out_item_ = np.ascontiguousarray(arrays["out_item"], dtype=np.float32)
        self.out_bias_ = np.asarray(arrays["out_bias"], dtype=np.float32)
        n_layers = int(np.asarray(arrays["n_layers"])[0])
        self.layers_ = [(None if layer == 0 else np.asarray(arrays[f"ih_w{layer}"], np.float32),
                         None if layer == 0 else np.asarray(arrays[f"ih_b{layer}"], np.float32),
                         np.asarray(arrays[f"hh_w{layer}"], np.float32), np.asarray(arrays[f"hh_b{layer}"], np.float32))
                        for layer in range(n_layers)]
        self.session_rule_ = int(np.asarray(arrays["session_rule"])[0])
        self.last_session_ = np.asarray(arrays["last_session"], dtype=np.int64)

    # -------------------------------------------------------------------------------- scoring
    def query_session(self, query: HistoryQuery) -> np.ndarray:
        """The items of a query's current session that the GRU reads (see :func:`current_session`). A query
        of a training user's own row (``query.user`` set, no ``session_items``) reads that user's kept training
        sequence from where training's last session of the user started (by session id when training had
        them): the row itself has no order."""
        self._check_fitted()
        p = self.params
        user = query.user
        if (query.session_items is None and user is not None and self.sequences_ is not None
                and user < self.sequences_.n_users):
            items = self.sequences_.of(user)[int(self.last_session_[user]):]
            return items[-p.max_len:].astype(np.int64)
        gap = self._gap_seconds if self.session_rule_ != RULE_NONE else None
        return current_session(query, gap, p.max_len)

    def _hidden(self, sessions: list[np.ndarray]) -> np.ndarray:
        """The top layer's hidden state after each session's items: ``float32[len(sessions), H]``."""
        size = self.out_item_.shape[1]
        width = max([len(s) for s in sessions] + [1])
        grid = np.full((len(sessions), width), -1, dtype=np.int64)
        for row, items in enumerate(sessions):  # right-aligned: every row ends at the last column
            if len(items):
                grid[row, width - len(items):] = items
        hidden = [np.zeros((len(sessions), size), dtype=np.float32) for _ in self.layers_]
        for t in range(width):
            live = grid[:, t] >= 0
            if not live.any():
                continue
            rows = np.flatnonzero(live)
            x = self.in_proj_[grid[rows, t]]
            for layer, (ih_w, ih_b, hh_w, hh_b) in enumerate(self.layers_):
                gates_x = x if ih_w is None else x @ ih_w.T + ih_b
                h = hidden[layer][rows]
                gates_h = h @ hh_w.T + hh_b
                xr, xz, xn = np.split(gates_x, 3, axis=1)
                hr, hz, hn = np.split(gates_h, 3, axis=1)
                r, z = expit(xr + hr), expit(xz + hz)
                n = np.tanh(xn + r * hn)
                x = ((1.0 - z) * n + z * h).astype(np.float32)
                hidden[layer][rows] = x
        return hidden[-1]

    def _sequence_scores(self, queries: Sequence[HistoryQuery]) -> np.ndarray:
        sessions = [self.query_session(q) for q in queries]
        out = np.empty((len(sessions), self.n_items), dtype=np.float32)
        for start in range(0, len(sessions), FORWARD_ROWS):
            hidden = self._hidden(sessions[start:start + FORWARD_ROWS])
            out[start:start + len(hidden)] = hidden @ self.out_item_.T + self.out_bias_
        return out

    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        """The torch module's scores of (training user, item) pairs, each user read as ``recommend(users)``
        reads it (its last session)."""
        assert self.sequences_ is not None
        p = self.params
        sessions = [self.query_session(self.sequences_.query(int(u))) for u in users]
        width = max([len(s) for s in sessions] + [1])
        hidden = torch.zeros(p.layers, len(users), p.factors)
        top = torch.zeros(len(users), p.factors)
        for t in range(width):
            rows = [r for r, s in enumerate(sessions) if len(s) > t]
            if not rows:
                break
            index = torch.tensor(rows, dtype=torch.int64)
            step_items = torch.tensor([int(sessions[r][t]) for r in rows], dtype=torch.int64)
            states, out = module.step(step_items, hidden[:, index])
            hidden[:, index] = states
            top[index] = out
        scores = module.logits(top)
        return scores[torch.arange(len(users)), torch.from_numpy(items)]
