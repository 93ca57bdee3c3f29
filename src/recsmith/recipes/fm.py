"""Factorisation machine (Rendle 2010) over user and item ids and their metadata, trained with PyTorch.

The model scores a (user, item) pair from the sparse vector ``x`` of its active features,

    ŷ(x) = w₀ + Σ_j w_j x_j + Σ_{j<k} ⟨v_j, v_k⟩ x_j x_k,

where the features are the user's id and metadata (each categorical value one column; a multi-valued field's
values averaged; numbers standardised) and the item's. Split into a user side ``U`` and an item side ``I``, the
pairwise sum is ``½(‖Σ_U v x‖² − Σ_U ‖v‖²x²) + ½(…I…) + ⟨Σ_U v x, Σ_I v x⟩``: a per-user vector and bias, a
per-item vector and bias, and a dot product. Training learns ``w`` and ``v``; what is saved and served is those
vectors and biases, so a campaign ranks with one matrix product and no torch. Items put after training are
scored from their metadata alone (their id column is absent): ``fm`` is a cold-start recipe when it has item
features.

Objectives: ``binary`` (log loss on a label rule such as ``EVENT_VALUE >= 4``: the SageMaker FM design),
``regression`` (squared loss on ``EVENT_VALUE``), ``ranking`` (BPR on sampled negatives, for implicit data).

References
----------
Rendle, "Factorization Machines", ICDM 2010.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from recsmith.data.labels import parse_label_rule
from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.recipes.base import Choice, FloatRange, IntRange, ItemSets, SetScorer
from recsmith.recipes.factorization import FactorModel, factor_set_scorer
from recsmith.recipes.features import FeatureEncoder, flat_bags, padded_bags, with_ids
from recsmith.recipes.torch_training import (
    TORCH_TAGS,
    Batch,
    NegativeSampler,
    TorchParams,
    TorchRecipe,
    neighbour_fold_in,
    positive_pairs,
)


class FMParams(TorchParams):
    """Params of :class:`FM`."""

    factors: int = Field(default=64, ge=1)
    """Dimensions of each feature's factor vector ``v``."""

    lr: float = Field(default=0.002, gt=0.0)
    """Initial learning rate (measured on ml-100k's binary task: ``benchmarks/classification.py``)."""

    reg: float = Field(default=0.01, ge=0.0)
    """L2 penalty on the factor vectors of each batch's features."""

    objective: Literal["binary", "regression", "ranking"] = "ranking"
    """``binary``: log loss on ``label``; ``regression``: squared loss on ``EVENT_VALUE``; ``ranking``: BPR over
    sampled negatives (implicit data)."""

    label: str = "EVENT_VALUE >= 4"
    """The positive label of the ``binary`` objective (see :mod:`recsmith.data.labels`)."""

    n_negatives: int = Field(default=1, ge=1)
    """Sampled negatives per positive (``ranking``)."""

    use_item_features: bool = True
    """Read the items dataset's fields (when the group has one)."""

    use_user_features: bool = True
    """Read the users dataset's fields (when the group has one)."""

    history: bool | None = None
    """Add the user's interacted items as a user-side field, each weighing ``1/√n`` (SVD++ written as an FM,
    Rendle 2012): users the model never saw are then scored from their history. None (the default): on for the
    ``binary`` and ``regression`` objectives, off for ``ranking`` (where the positive itself is in the history)."""

    search_space = {
        "factors": IntRange(low=8, high=128, log=True),
        "lr": FloatRange(low=1e-3, high=5e-2, log=True),
        "reg": FloatRange(low=1e-7, high=1e-2, log=True),
        "epochs": IntRange(low=5, high=40),
        "batch_size": Choice(choices=(256, 1024, 4096)),
    }

    @field_validator("label")
    @classmethod
    def _rule(cls, value: str) -> str:
        parse_label_rule(value)
        return value


def _build_module(torch: Any, n_user_cols: int, n_item_cols: int, factors: int, sparse: bool, bias: float) -> Any:
    nn = torch.nn

    class FMModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # one padding row past the columns (padded_bags' filler): zero, never trained
            # the user side is read by sparse products (flat_side): dense gradients
            self.user_v = nn.Embedding(n_user_cols + 1, factors, padding_idx=n_user_cols)
            self.user_w = nn.Embedding(n_user_cols + 1, 1, padding_idx=n_user_cols)
            self.item_v = nn.Embedding(n_item_cols + 1, factors, sparse=sparse, padding_idx=n_item_cols)
            self.item_w = nn.Embedding(n_item_cols + 1, 1, sparse=sparse, padding_idx=n_item_cols)
            with torch.no_grad():
                for table in (self.user_v, self.item_v):
                    nn.init.normal_(table.weight, std=0.01)
                    table.weight[-1].zero_()
                for table in (self.user_w, self.item_w):
                    nn.init.zeros_(table.weight)
            self.bias = nn.Parameter(torch.tensor([bias], dtype=torch.float32))

        @staticmethod
        def side(v: Any, w: Any, cols: Any, vals: Any) -> tuple[Any, Any, Any]:
            """Per row of padded bags: ``Σ v x``, ``Σ w x + ½(‖Σ v x‖² − Σ ‖v x‖²)`` and the L2 of the rows used."""
            e = v(cols) * vals[..., None]
            vec = e.sum(1)
            squares = (e * e).sum((1, 2))
            lin = (w(cols)[..., 0] * vals).sum(1)
            return vec, lin + 0.5 * ((vec * vec).sum(1) - squares), squares.sum()

        @staticmethod
        def flat_side(v: Any, w: Any, cols: Any, vals: Any, offsets: Any) -> tuple[Any, Any, Any]:
            """:meth:`side` of flat bags (rows of any width, such as histories), as sparse × dense products
            (their backward is one sparse product too, where a gather of every entry's row is slow on CPU)."""
            n = len(offsets)
            lengths = torch.diff(torch.cat([offsets, offsets.new_tensor([len(cols)])]))
            segment = torch.repeat_interleave(torch.arange(n, device=cols.device), lengths)
            index = torch.stack([segment, cols])
            shape = (n, v.weight.shape[0])
            x = torch.sparse_coo_tensor(index, vals, shape, is_coalesced=True, check_invariants=False)
            x2 = torch.sparse_coo_tensor(index, vals * vals, shape, is_coalesced=True, check_invariants=False)
            vec = torch.sparse.mm(x, v.weight)
            lin = torch.sparse.mm(x, w.weight)[:, 0]
            squares = torch.sparse.mm(x2, v.weight.pow(2).sum(1, keepdim=True))[:, 0]
            return vec, lin + 0.5 * ((vec * vec).sum(1) - squares), squares.sum()

    return FMModule()


class FM(TorchRecipe, FactorModel):
    """Factorisation machine: ids plus every user and item metadata field (see the module docstring)."""

    name = "fm"
    Params: ClassVar[type[FMParams]] = FMParams
    tags = dataclasses.replace(TORCH_TAGS, uses_item_features=True, uses_user_features=True, similar_items=True,
                               cold_start_items=True)
    quantized_arrays = ("user_vectors", "item_vectors", "item_feature_v")

    # -------------------------------------------------------------------------------- training
    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        p = self.params
        self.user_encoder_ = FeatureEncoder.fit(data.user_features if p.use_user_features else None)
        self.item_encoder_ = FeatureEncoder.fit(data.item_features if p.use_item_features else None)
        self.history_columns_ = data.n_items if self._uses_history() else 0
        self._user_design = self._user_rows(data.interactions.matrix, self.user_encoder_.encode(
            data.user_features, data.n_users), ids=True)
        self._item_design = with_ids(self.item_encoder_.encode(data.item_features, data.n_items))
        self._n_items = data.n_items
        self._item_bags = padded_bags(self._item_design)
        matrix = data.interactions.matrix.tocsr()
        if p.objective == "ranking":
            users, items = positive_pairs(data)
            if not len(users):
                raise DataError("the fm ranking objective needs positive interactions (weight > 0)")
            self._sampler = NegativeSampler(users, items, data.n_items)
            self._bias = 0.0
            return {"size": users, "items": items}
        values = data.interactions.values
        if values is None:
            raise DataError(f"the fm {p.objective} objective needs EVENT_VALUE (ratings) on the interactions; "
                            "use objective='ranking' for implicit data")
        users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        items = matrix.indices.astype(np.int64)
        keep = np.isfinite(values)
        if not keep.any():
            raise DataError(f"the fm {p.objective} objective needs EVENT_VALUE, and no interaction has one")
        values = np.asarray(values, dtype=np.float64)[keep]
        if p.objective == "binary":
            target = parse_label_rule(p.label).apply(values).astype(np.float32)
            rate = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
            self._bias = float(np.log(rate / (1 - rate)))
        else:
            target = values.astype(np.float32)
            self._bias = float(target.mean())
        return {"size": users[keep], "items": items[keep], "y": target}

    def _module(self, torch: Any) -> Any:
        rows = self._user_design.shape[1] + self._item_design.shape[1]
        return _build_module(torch, self._user_design.shape[1], self._item_design.shape[1], self.params.factors,
                             self._sparse(rows), self._bias)

    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        users = examples["size"]
        items = examples["items"]
        cols, vals, offsets = flat_bags(self._user_design, users)
        batch: Batch = {"size": users, "u_cols": cols, "u_vals": vals, "u_offsets": offsets}
        if self.params.objective == "ranking":
            negatives = self._sampler.sample(users, self.params.n_negatives, rng).ravel()
            items = np.concatenate([items, negatives])
        else:
            batch["y"] = examples["y"]
        batch["i_cols"], batch["i_vals"] = self._item_bags[0][items], self._item_bags[1][items]
        return batch

    def _loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        n = len(b["size"])
        user_vec, user_bias, user_l2 = module.flat_side(module.user_v, module.user_w, b["u_cols"], b["u_vals"],
                                                        b["u_offsets"])
        item_vec, item_bias, item_l2 = module.side(module.item_v, module.item_w, b["i_cols"], b["i_vals"])
        l2 = (user_l2 + item_l2) / n
        objective = self.params.objective
        if objective == "ranking":
            k = self.params.n_negatives
            positive = (user_vec * item_vec[:n]).sum(1) + item_bias[:n]
            negative = (user_vec.repeat_interleave(k, 0) * item_vec[n:]).sum(1) + item_bias[n:]
            loss = -torch.nn.functional.logsigmoid(positive.repeat_interleave(k, 0) - negative).mean()
            return loss, l2
        logit = module.bias[0] + user_bias + item_bias + (user_vec * item_vec).sum(1)
        if objective == "binary":
            return torch.nn.functional.binary_cross_entropy_with_logits(logit, b["y"]), l2
        return torch.nn.functional.mse_loss(logit, b["y"]), l2

    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        tensor = torch.from_numpy
        cols, vals, offsets = flat_bags(self._user_design, users)
        user_vec, user_bias, _ = module.flat_side(module.user_v, module.user_w, tensor(cols), tensor(vals),
                                                  tensor(offsets))
        item_vec, item_bias, _ = module.side(module.item_v, module.item_w, tensor(self._item_bags[0][items]),
                                             tensor(self._item_bags[1][items]))
        return module.bias[0] + user_bias + item_bias + (user_vec * item_vec).sum(1)

    def _export(self, module: Any, torch: Any) -> None:
        tables = {name: getattr(module, name).weight.detach().cpu().numpy()[:-1].astype(np.float32)
                  for name in ("user_v", "user_w", "item_v", "item_w")}  # less the padding row
        user_vectors, user_bias = side_numpy(self._user_design, tables["user_v"], tables["user_w"][:, 0])
        item_vectors, item_bias = side_numpy(self._item_design, tables["item_v"], tables["item_w"][:, 0])
        n_items = self._n_items
        self.arrays_ = {
            "global_bias": np.asarray([float(module.bias.detach().cpu()[0])], dtype=np.float32),
            "user_vectors": user_vectors, "user_bias": user_bias,
            "item_vectors": item_vectors, "item_bias": item_bias,
            "item_feature_v": tables["item_v"][n_items:], "item_feature_w": tables["item_w"][n_items:, 0],
            "history_v": tables["user_v"][len(tables["user_v"]) - self.history_columns_:],
            "history_w": tables["user_w"][len(tables["user_w"]) - self.history_columns_:, 0],
            "objective": np.asarray([self.params.objective]),
            **self.item_encoder_.state("item_encoder_"),
        }
        self._set_arrays(dict(self.arrays_))

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.global_bias_ = float(np.asarray(arrays["global_bias"])[0])
        self.user_factors_ = np.ascontiguousarray(arrays["user_vectors"], dtype=np.float32)
        self.user_bias_ = np.asarray(arrays["user_bias"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
        self.item_bias_ = np.asarray(arrays["item_bias"], dtype=np.float32)
        self.item_feature_v_ = np.asarray(arrays["item_feature_v"], dtype=np.float32)
        self.item_feature_w_ = np.asarray(arrays["item_feature_w"], dtype=np.float32)
        self.item_encoder_ = FeatureEncoder.from_state(arrays, "item_encoder_")
        self.history_v_ = np.asarray(arrays["history_v"], dtype=np.float32)
        self.history_w_ = np.asarray(arrays["history_w"], dtype=np.float32)

    def _uses_history(self) -> bool:
        history = self.params.history
        return self.params.objective != "ranking" if history is None else bool(history)

    @staticmethod
    def _history_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Each user's interacted items (any weight, as SVD++'s N(u)), weighing ``1/√n``."""
        pattern = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        pattern.data[:] = 1.0
        pattern.eliminate_zeros()
        counts = np.diff(pattern.indptr)
        pattern.data /= np.sqrt(np.repeat(np.maximum(counts, 1), counts)).astype(np.float32)
        return pattern

    def _user_rows(self, matrix: sp.csr_matrix, features: sp.csr_matrix, ids: bool) -> sp.csr_matrix:
        """The user-side design: ``[id | features | history]`` (the history only when :meth:`_uses_history`)."""
        design = with_ids(features, ids)
        if self.history_columns_:
            design = sp.hstack([design, self._history_rows(matrix)], format="csr", dtype=np.float32)
        return design

    # -------------------------------------------------------------------------------- scoring
    def _user_side(self, histories: sp.csr_matrix, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if users is not None:
            return self.user_factors_[users], self.user_bias_[users]
        if len(self.history_v_):  # the FM's own answer: the user side from the history field alone
            return side_numpy(self._history_rows(histories), self.history_v_, self.history_w_)
        stacked = np.hstack([self.user_factors_, self.user_bias_[:, None]])
        folded = neighbour_fold_in(histories, self._check_fitted(), stacked)
        return folded[:, :-1], folded[:, -1]

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        vectors, bias = self._user_side(histories, users)
        logits = vectors @ self.item_factors_.T
        logits += (self.global_bias_ + bias)[:, None]
        logits += self.item_bias_[None, :]
        return logits.astype(np.float32, copy=False)

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """Transpose scoring of the training users' logits ``w0 + b_u + b_i + v_u·v_i`` (what ``recommend``
        ranks, before any sigmoid) with :func:`~recsmith.recipes.factorization.factor_set_scorer`."""
        return factor_set_scorer(self.user_factors_, self.item_factors_, sets,
                                 user_offsets=self.user_bias_.astype(np.float64) + float(self.global_bias_),
                                 item_offsets=self.item_bias_)

    @property
    def score_is_probability(self) -> bool:
        return self.params.objective == "binary"

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Pair scores: the probability of the label (``binary``), the predicted value (``regression``) or the
        ranking score (``ranking``); NaN where the user or the item is -1.

        Raises
        ------
        DataError
            For arrays of different lengths, or indices outside the model.
        """
        users, items = self._pair_indices(users, items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        both = (users >= 0) & (items >= 0)
        logits = (self.global_bias_ + self.user_bias_[users[both]] + self.item_bias_[items[both]]
                  + np.einsum("ij,ij->i", self.user_factors_[users[both]], self.item_factors_[items[both]]))
        out[both] = 1.0 / (1.0 + np.exp(-logits)) if self.params.objective == "binary" else logits
        return out

    def score_new_items(self, histories: sp.csr_matrix, users: np.ndarray | None,
                        features: FeatureTable) -> np.ndarray:
        """Scores of items never seen in training, from their metadata (see :meth:`Recipe.score_new_items`).

        Raises
        ------
        ConfigError
            When the model was trained without item features (nothing to score new items from).
        """
        self._check_fitted()
        if not self.item_encoder_.n_columns:
            raise ConfigError("this fm model was trained without item features, so it cannot score new items; "
                              "import the items dataset and train again")
        design = self.item_encoder_.encode(features, features.n_rows)
        item_vectors, item_bias = side_numpy(design, self.item_feature_v_, self.item_feature_w_)
        vectors, bias = self._user_side(histories, users)
        scores = vectors @ item_vectors.T + (self.global_bias_ + bias)[:, None] + item_bias[None, :]
        return scores.astype(np.float32)


def side_numpy(design: sp.csr_matrix, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One side of the FM in numpy: each row's ``Σ v_j x_j`` and ``Σ w_j x_j + ½(‖Σ v_j x_j‖² − Σ ‖v_j‖² x_j²)``."""
    design = sp.csr_matrix(design, dtype=np.float32)
    vectors = np.asarray(design @ v, dtype=np.float32)
    squared = design.multiply(design).tocsr()
    bias = (np.asarray(design @ w).ravel() + 0.5 * ((vectors * vectors).sum(1)
                                                   - np.asarray(squared @ (v * v).sum(1)).ravel()))
    return np.ascontiguousarray(vectors), bias.astype(np.float32)
