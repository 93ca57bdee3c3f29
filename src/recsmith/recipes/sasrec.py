"""SASRec (Kang & McAuley 2018): causal self-attention over a user's last ``max_len`` items, trained with PyTorch.

The next item after each position of a user's sequence is predicted from the items up to it: item embeddings
(scaled by ``√d``) plus learned position embeddings (counted back from the latest item), ``layers`` pre-norm
transformer blocks (causal multi-head self-attention, then a position-wise feed-forward, each with a residual
connection and dropout), a final layer norm, and a dot product with the (shared) item embeddings.

Losses (``loss``):

- ``ce`` (the default): a full softmax over the catalogue at every position, as in SASRec+ (Klenitskiy &
  Vasilev 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?"), which beats BERT4Rec;
- ``sampled-ce``: a softmax over the target and ``n_negatives`` items sampled uniformly, shared by the batch
  (for catalogues too big for a full softmax);
- ``bce``: the paper's binary cross-entropy with one sampled negative per position.

Options: ``item_features`` adds the items' metadata (a learned projection of their categorical and numerical
features, :class:`~recsmith.recipes.features.FeatureEncoder`) to the item embeddings, HRNN-metadata's idea;
``time_gaps`` adds an embedding of the log-bucketed time since the previous event.

Training reads the ordered event log (:attr:`TrainingData.events`: repeats kept). For early stopping, a seeded
``val_fraction`` of the users have their last step held out (they train on the rest of their sequence). Serving
runs a numpy forward pass (no torch) that matches the torch module's scores to 1e-4 (tested); the last block's
attention is computed for the latest position only.

References
----------
Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Klenitskiy and Vasilev, "Turning
Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys 2023.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.recipes.base import Choice, FloatRange, IntRange
from recsmith.recipes.features import FeatureEncoder
from recsmith.recipes.query import HistoryQuery
from recsmith.recipes.sequential import Sequences, SequentialRecipe, last_items
from recsmith.recipes.torch_training import TORCH_TAGS, Batch, TorchParams, TorchRecipe

logger = logging.getLogger(__name__)

GAP_BUCKETS = 24
"""Time-gap buckets: 0 for the first event (or no times), then ``1 + floor(log2(1 + minutes))``, capped."""
LN_EPS = 1e-5
SCORE_BATCH = 256
"""Queries per numpy forward pass."""


class SASRecParams(TorchParams):
    """Params of :class:`SASRec`."""

    factors: int = Field(default=64, ge=2)
    """Hidden size (item and position embeddings, attention, feed-forward)."""

    layers: int = Field(default=2, ge=1)
    """Transformer blocks."""

    heads: int = Field(default=1, ge=1)
    """Attention heads (``factors`` must divide by it)."""

    max_len: int = Field(default=50, ge=2)
    """The most recent items of a user read, in training and at inference (50 for sparse data, 200 for dense
    data such as MovieLens)."""

    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Dropout on the embeddings, the attention weights and each block's outputs."""

    loss: Literal["ce", "sampled-ce", "bce"] = "ce"
    """``ce``: full softmax; ``sampled-ce``: softmax over ``n_negatives`` shared uniform negatives; ``bce``: one
    negative per position (the paper's)."""

    n_negatives: int = Field(default=256, ge=1)
    """Sampled negatives of ``sampled-ce`` (per batch, shared)."""

    item_features: bool = False
    """Add a projection of the items' metadata to their embeddings."""

    time_gaps: bool = False
    """Add an embedding of the (log-bucketed) time since the previous event."""

    epochs: int = Field(default=100, ge=1)
    """Most passes over the users (early stopping on the held-out last steps usually ends sooner)."""

    batch_size: int = Field(default=128, ge=1)
    """Users per step."""

    lr: float = Field(default=0.001, gt=0.0)
    """Adam's learning rate."""

    reg: float = Field(default=0.0, ge=0.0)
    """L2 penalty on the item embeddings a batch uses."""

    val_metric: Literal["ndcg@10", "loss"] = "ndcg@10"
    """What early stopping and the learning-rate schedule watch on the held-out last steps: ``ndcg@10`` of the
    held-out item among all items (recorded as ``val_loss`` = 1 − ndcg@10; a full softmax's validation loss
    starts rising epochs before the ranking stops improving), or ``loss``: the held-out steps' loss."""

    patience: int = Field(default=5, ge=0)
    """Epochs without a better validation loss before training stops (the best epoch is kept)."""

    lr_patience: int = Field(default=2, ge=0)
    """Epochs without a better validation loss before the learning rate is halved."""

    search_space = {
        "factors": Choice(choices=(32, 64, 128)),
        "layers": IntRange(low=1, high=3),
        "dropout": FloatRange(low=0.1, high=0.6),
        "lr": FloatRange(low=3e-4, high=3e-3, log=True),
        "max_len": Choice(choices=(50, 100, 200)),
    }


def _gap_buckets(times: np.ndarray | None, n: int) -> np.ndarray:
    """``int64[n]`` bucket of the gap before each event (0 for the first, and everywhere without times)."""
    out = np.zeros(n, dtype=np.int64)
    if times is None or n < 2:
        return out
    minutes = np.maximum(np.diff(np.asarray(times, dtype=np.float64)), 0.0) / 60.0
    out[1:] = np.minimum(1 + np.floor(np.log2(1.0 + minutes)), GAP_BUCKETS - 1).astype(np.int64)
    return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LN_EPS) * weight + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


class SASRec(SequentialRecipe, TorchRecipe):
    """Self-attentive sequential recommendation (see the module docstring).

    Examples
    --------
    >>> from recsmith.recipes import create
    >>> create("sasrec", max_len=200, loss="ce").params.layers
    2
    """

    name = "sasrec"
    Params: ClassVar[type[SASRecParams]] = SASRecParams
    tags = dataclasses.replace(TORCH_TAGS, sequential=True, uses_item_features=True)
    quantized_arrays = ("item_table",)

    # ------------------------------------------------------------------------------ training data
    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        p = self.params
        if p.factors % p.heads:
            raise ConfigError(f"recipe sasrec: factors ({p.factors}) must be a multiple of heads ({p.heads})")
        self._keep_sequences(data)
        self._train_seqs = Sequences.from_events(data.events, data.n_users, p.max_len + 1)
        self._n_items = data.n_items
        self._encoder = FeatureEncoder.fit(data.item_features if p.item_features else None)
        self._design = (self._encoder.encode(data.item_features, data.n_items) if self._encoder.n_columns
                        else None)
        lengths = self._train_seqs.lengths()
        users = np.flatnonzero(lengths >= 2).astype(np.int64)
        return {"user": users, "end": lengths[users].astype(np.int64), "last": np.zeros(len(users), np.int64)}

    def _split_examples(self, examples: Batch, rng: np.random.Generator) -> tuple[Batch, Batch]:
        """Every user trains; a seeded ``val_fraction`` of those with 3+ events has its last step held out as
        the validation target (and trains on the steps before it)."""
        eligible = np.flatnonzero(examples["end"] >= 3)
        n_val = int(round(len(eligible) * self.params.val_fraction))
        chosen = np.sort(rng.choice(eligible, n_val, replace=False)) if n_val else np.empty(0, np.int64)
        train = {key: value.copy() for key, value in examples.items()}
        train["end"][chosen] -= 1
        validation = {key: value[chosen] for key, value in examples.items()}
        validation["last"][:] = 1
        return train, validation

    def _batches(self, examples: Batch, rows: np.ndarray, rng: np.random.Generator) -> Iterator[Batch]:
        """Batches of users of similar lengths (sorted within chunks of 50 batches, batch order shuffled), so
        little of each batch is padding."""
        size = self.params.batch_size
        chunk = size * 50
        batches = []
        ends = np.minimum(examples["end"], self.params.max_len + 1)
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            part = part[np.argsort(ends[part], kind="stable")]
            batches += [part[i:i + size] for i in range(0, len(part), size)]
        for index in rng.permutation(len(batches)):
            yield self._batch({key: value[batches[index]] for key, value in examples.items()}, rng)

    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        p = self.params
        seqs = self._train_seqs
        ends = np.minimum(examples["end"], p.max_len + 1)
        width = int(ends.max()) - 1
        n = len(ends)
        inputs = np.zeros((n, width), dtype=np.int64)
        targets = np.zeros((n, width), dtype=np.int64)
        gaps = np.zeros((n, width), dtype=np.int64)
        for row, (user, end, length, last) in enumerate(zip(examples["user"].tolist(), examples["end"].tolist(),
                                                            ends.tolist(), examples["last"].tolist(), strict=True)):
            items = seqs.of(user)[end - length:end].astype(np.int64) + 1
            inputs[row, width - length + 1:] = items[:-1]
            if last:
                targets[row, -1] = items[-1]
            else:
                targets[row, width - length + 1:] = items[1:]
            if p.time_gaps:
                times = seqs.times_of(user)
                if times is not None:
                    gaps[row, width - length + 1:] = _gap_buckets(times[end - length:end - 1], length - 1)
        batch: Batch = {"inputs": inputs, "targets": targets}
        if p.time_gaps:
            batch["gaps"] = gaps
        if p.loss == "sampled-ce":
            batch["negatives"] = rng.integers(1, self._n_items + 1, p.n_negatives)
        elif p.loss == "bce":
            batch["negatives"] = rng.integers(1, self._n_items + 1, (n, width))
        return batch

    # ------------------------------------------------------------------------------------ torch
    def _module(self, torch: Any) -> Any:
        p = self.params
        design = None
        if self._design is not None:
            coo = self._design.tocoo()
            design = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data.astype(np.float32),
                                             coo.shape).coalesce()
        return _build_module(torch, self._n_items, p.factors, p.layers, p.heads, p.max_len, p.dropout, design,
                             GAP_BUCKETS if p.time_gaps else 0)

    def _loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        p = self.params
        functional = torch.nn.functional
        table = module.item_table()
        hidden = module(b["inputs"], b.get("gaps"), table)
        chosen = b["targets"] > 0
        h = hidden[chosen]
        targets = b["targets"][chosen]
        if p.loss == "ce":
            loss = functional.cross_entropy(h @ table[1:].T, targets - 1)
        elif p.loss == "sampled-ce":
            negatives = b["negatives"]
            positive = (h * table[targets]).sum(-1, keepdim=True)
            negative = (h @ table[negatives].T).masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
            logits = torch.cat([positive, negative], dim=1)
            loss = functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        else:
            negatives = b["negatives"][chosen]
            positive = (h * table[targets]).sum(-1)
            negative = (h * table[negatives]).sum(-1)
            loss = (functional.softplus(-positive) + functional.softplus(negative)).mean()
        l2 = table[torch.unique(targets)].pow(2).sum() / max(len(targets), 1) if p.reg else torch.zeros(())
        return loss, l2

    def _evaluate(self, module: Any, batches: list[Batch], torch: Any, device: Any) -> float:
        """The validation figure early stopping watches: 1 − ndcg@10 of each held-out last step among all items
        (``val_metric="ndcg@10"``), or the loss."""
        if self.params.val_metric == "loss":
            return super()._evaluate(module, batches, torch, device)
        module.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            table = module.item_table()
            for batch in batches:
                tensors = {key: torch.from_numpy(np.ascontiguousarray(value)).to(device)
                           for key, value in batch.items()}
                last = module(tensors["inputs"], tensors.get("gaps"), table)[:, -1]
                targets = tensors["targets"][:, -1]
                scores = last @ table[1:].T
                own = scores.gather(1, (targets - 1)[:, None])
                rank = (scores > own).sum(1)
                gain = torch.where(rank < 10, 1.0 / torch.log2(rank.to(torch.float32) + 2.0), 0.0)
                total += float(gain.sum())
                count += len(gain)
        return 1.0 - total / max(count, 1)

    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        queries = [self.sequences_.query(int(u)) for u in users]
        inputs, gaps = self._inputs(queries)
        table = module.item_table()
        hidden = module(torch.from_numpy(inputs), torch.from_numpy(gaps) if self.params.time_gaps else None, table)
        last = hidden[:, -1]
        return (last * table[torch.from_numpy(items + 1)]).sum(-1)

    def _export(self, module: Any, torch: Any) -> None:
        def array(tensor: Any) -> np.ndarray:
            return np.ascontiguousarray(tensor.detach().cpu().numpy().astype(np.float32))

        with torch.no_grad():
            arrays: dict[str, np.ndarray] = {"item_table": array(module.item_table()),
                                             "positions": array(module.positions.weight),
                                             "final_w": array(module.final.weight), "final_b": array(module.final.bias)}
        if module.gaps is not None:
            arrays["gaps"] = array(module.gaps.weight)
        for j, block in enumerate(module.blocks):
            for name in ("ln1", "q", "k", "v", "o", "ln2", "ff1", "ff2"):
                layer = getattr(block, name)
                arrays[f"b{j}_{name}_w"], arrays[f"b{j}_{name}_b"] = array(layer.weight), array(layer.bias)
        self.arrays_ = arrays
        self._set_arrays(dict(arrays))

    def _finish(self, module: Any, torch: Any) -> None:
        """Export the numpy state, then (unquantised models) the forward pass as ONNX, kept as a state array."""
        super()._finish(module, torch)
        if not self.params.quantize:
            exported = _onnx_bytes(module, torch, self.params.max_len, self.params.time_gaps)
            if exported is not None:
                self.arrays_["onnx"] = np.frombuffer(exported, dtype=np.uint8)
                self._session = _onnx_session(self.arrays_["onnx"])

    @property
    def serving_backend(self) -> str:
        """What scores requests: ``"onnxruntime"`` (the exported forward pass, when onnxruntime is installed:
        measured faster, see the README) or ``"numpy"``."""
        return "onnxruntime" if getattr(self, "_session", None) is not None else "numpy"

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._session = _onnx_session(arrays["onnx"]) if "onnx" in arrays else None
        self.item_table_ = np.ascontiguousarray(arrays["item_table"], dtype=np.float32)
        self.positions_ = np.asarray(arrays["positions"], dtype=np.float32)
        self.gaps_ = None if "gaps" not in arrays else np.asarray(arrays["gaps"], dtype=np.float32)
        self.final_ = (np.asarray(arrays["final_w"], np.float32), np.asarray(arrays["final_b"], np.float32))
        self.blocks_ = []
        j = 0
        while f"b{j}_q_w" in arrays:
            self.blocks_.append({name: (np.asarray(arrays[f"b{j}_{name}_w"], np.float32),
                                        np.asarray(arrays[f"b{j}_{name}_b"], np.float32))
                                 for name in ("ln1", "q", "k", "v", "o", "ln2", "ff1", "ff2")})
            j += 1

    # ---------------------------------------------------------------------------- numpy forward
    def _inputs(self, queries: Sequence[HistoryQuery], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(items + 1, gap buckets)``, ``int64[n, L]``, right-aligned, 0-padded on the left; ``L`` the longest
        query's length, or ``width`` (the ONNX graph's fixed ``max_len``)."""
        max_len = self.params.max_len
        lists = []
        for query in queries:
            known = query.items >= 0
            items = query.items[known][-max_len:]
            times = None if query.timestamps is None else np.asarray(query.timestamps)[known][-max_len:]
            lists.append((items, times))
        width = width or max([len(items) for items, _ in lists] + [1])
        inputs = np.zeros((len(lists), width), dtype=np.int64)
        gaps = np.zeros((len(lists), width), dtype=np.int64)
        for row, (items, times) in enumerate(lists):
            if len(items):
                inputs[row, width - len(items):] = items + 1
                gaps[row, width - len(items):] = _gap_buckets(times, len(items))
        return inputs, gaps

    def _sequence_scores(self, queries: Sequence[HistoryQuery]) -> np.ndarray:
        out = np.empty((len(queries), self.n_items), dtype=np.float32)
        session = getattr(self, "_session", None)
        for start in range(0, len(queries), SCORE_BATCH):
            part = queries[start:start + SCORE_BATCH]
            inputs, gaps = self._inputs(part, self.params.max_len if session is not None else None)
            if session is not None:
                feed = {"inputs": inputs} | ({"gaps": gaps} if self.params.time_gaps else {})
                out[start:start + len(part)] = session.run(None, feed)[0]
            else:
                out[start:start + len(part)] = self._forward(inputs, gaps) @ self.item_table_[1:].T
            empty = np.fromiter((not len(last_items(q, None)) for q in part), dtype=bool, count=len(part))
            out[start:start + len(part)][empty] = 0.0  # nothing to read: no preference
        return out

    def _forward(self, inputs: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """The final hidden state at the latest position, ``float32[n, factors]`` (numpy, as the torch module
        computes it in eval mode)."""
        n, width = inputs.shape
        d = self.item_table_.shape[1]
        heads = self.params.heads
        dh = d // heads
        keep = (inputs > 0)[:, :, None].astype(np.float32)
        x = self.item_table_[inputs] * math.sqrt(d) + self.positions_[self.params.max_len - width:][None]
        if self.gaps_ is not None:
            x = x + self.gaps_[gaps]
        x = x * keep
        allowed = np.tril(np.ones((width, width), dtype=bool))[None] & (inputs > 0)[:, None, :]
        allowed |= np.eye(width, dtype=bool)[None]
        for j, block in enumerate(self.blocks_):
            last_block = j == len(self.blocks_) - 1
            a = _layer_norm(x, *block["ln1"])
            query_rows = a[:, -1:] if last_block else a
            q = (query_rows @ block["q"][0].T + block["q"][1]).reshape(n, -1, heads, dh).transpose(0, 2, 1, 3)
            k = (a @ block["k"][0].T + block["k"][1]).reshape(n, width, heads, dh).transpose(0, 2, 1, 3)
            v = (a @ block["v"][0].T + block["v"][1]).reshape(n, width, heads, dh).transpose(0, 2, 1, 3)
            mask = allowed[:, -1:] if last_block else allowed
            logits = np.where(mask[:, None], q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh), -np.inf)
            attended = (_softmax(logits) @ v).transpose(0, 2, 1, 3).reshape(n, -1, d)
            base = x[:, -1:] if last_block else x
            h = base + attended @ block["o"][0].T + block["o"][1]
            f = np.maximum(_layer_norm(h, *block["ln2"]) @ block["ff1"][0].T + block["ff1"][1], 0.0)
            h = h + f @ block["ff2"][0].T + block["ff2"][1]
            x = h * (keep[:, -1:] if last_block else keep)
        return _layer_norm(x[:, -1], *self.final_).astype(np.float32)


def _onnx_bytes(module: Any, torch: Any, max_len: int, time_gaps: bool) -> bytes | None:
    """The module's scoring pass as ONNX (inputs ``int64[n, max_len]`` (+ ``gaps``) -> ``float32[n, n_items]``),
    or None when it cannot be exported here (the ``onnx`` package absent: serving then runs numpy)."""
    import io

    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        logger.info("sasrec: the onnx package is absent; serving will run the numpy forward pass")
        return None

    class Scores(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, inputs: Any, gaps: Any = None) -> Any:
            table = self.inner.item_table()
            return self.inner(inputs, gaps, table)[:, -1] @ table[1:].T

    module.to("cpu").eval()
    example = (torch.ones(1, max_len, dtype=torch.long),) + ((torch.zeros(1, max_len, dtype=torch.long),)
                                                               if time_gaps else ())
    names = ["inputs", "gaps"][:len(example)]
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Scores(), example, buffer, input_names=names, output_names=["scores"],
                              dynamic_axes={name: {0: "n"} for name in [*names, "scores"]}, dynamo=False)
    except Exception as exc:  # an exporter that cannot: serving runs numpy, as without onnx
        logger.warning("sasrec: ONNX export failed (%s); serving will run the numpy forward pass", exc)
        return None
    return buffer.getvalue()


def _onnx_session(model: np.ndarray) -> Any:
    """An onnxruntime session of a saved ONNX model (one thread: serving runs a process per core), or None
    without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(np.asarray(model, dtype=np.uint8).tobytes(), options,
                                        providers=["CPUExecutionProvider"])


def _build_module(torch: Any, n_items: int, d: int, layers: int, heads: int, max_len: int, dropout: float,
                  design: Any, gap_buckets: int) -> Any:
    nn = torch.nn
    functional = nn.functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=LN_EPS), nn.LayerNorm(d, eps=LN_EPS)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ff1, self.ff2 = nn.Linear(d, d), nn.Linear(d, d)
            self.drop = nn.Dropout(dropout)

        def forward(self, x: Any, allowed: Any, keep: Any) -> Any:
            n, width, _ = x.shape
            a = self.ln1(x)

            def split(t: Any) -> Any:
                return t.view(n, width, heads, d // heads).transpose(1, 2)

            attended = functional.scaled_dot_product_attention(
                split(self.q(a)), split(self.k(a)), split(self.v(a)), attn_mask=allowed[:, None],
                dropout_p=dropout if self.training else 0.0)
            x = x + self.drop(self.o(attended.transpose(1, 2).reshape(n, width, d)))
            x = x + self.drop(self.ff2(self.drop(functional.relu(self.ff1(self.ln2(x))))))
            return x * keep

    class SASRecModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, d, padding_idx=0)
            nn.init.normal_(self.items.weight, std=d ** -0.5)
            with torch.no_grad():
                self.items.weight[0].zero_()
            self.positions = nn.Embedding(max_len, d)
            self.gaps = nn.Embedding(gap_buckets, d) if gap_buckets else None
            self.features = nn.Linear(design.shape[1], d, bias=False) if design is not None else None
            if design is not None:
                self.register_buffer("design", design, persistent=False)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.final = nn.LayerNorm(d, eps=LN_EPS)
            self.drop = nn.Dropout(dropout)

        def item_table(self) -> Any:
            """Row 0 the padding, rows 1.. the items (plus their features' projection)."""
            table = self.items.weight
            if self.features is not None:
                extra = torch.sparse.mm(self.design, self.features.weight.T)
                table = table + torch.cat([torch.zeros(1, d, device=table.device), extra])
            return table

        def forward(self, inputs: Any, gaps: Any, table: Any) -> Any:
            width = inputs.shape[1]
            keep = (inputs > 0).unsqueeze(-1).to(table.dtype)
            x = table[inputs] * math.sqrt(d) + self.positions.weight[max_len - width:][None]
            if self.gaps is not None and gaps is not None:
                x = x + self.gaps(gaps)
            x = self.drop(x) * keep
            steps = torch.arange(width, device=inputs.device)
            causal = steps[None, :] <= steps[:, None]
            itself = steps[None, :] == steps[:, None]  # (not torch.eye: onnxruntime lacks EyeLike for booleans)
            allowed = (causal[None] & (inputs > 0)[:, None, :]) | itself[None]
            for block in self.blocks:
                x = block(x, allowed, keep)
            return self.final(x)

    return SASRecModule()
