"""NeuMF (He et al. 2017, Neural Collaborative Filtering): GMF and MLP towers fused, trained with PyTorch.

``ŷ_ui = σ(hᵀ [p_u ⊙ q_i ; MLP([p'_u ; q'_i (; user features ; item features)])])``, learned with log loss on each
positive and ``n_negatives`` sampled unobserved items (4, as in the paper). With ``pretrain`` the GMF and the
MLP are first trained alone, and NeuMF starts from their weights with ``h = [α h_GMF ; (1 − α) h_MLP]``
(α = 0.5), as in the paper. The numpy forward (for serving) computes the MLP's first layer once per user and
once per item, then the rest for each pair.

Users the model never saw are folded in as the mean of the training users' embeddings, weighted by how many of
the new user's items they share.

References
----------
He, Liao, Zhang, Nie, Hu and Chua, "Neural Collaborative Filtering", WWW 2017. Dacrema, Cremonesi and Jannach,
"Are We Really Making Much Progress?", RecSys 2019 (NeuMF against tuned baselines).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from recsmith.data.training import TrainingData
from recsmith.errors import DataError
from recsmith.recipes.base import Choice, FloatRange, IntRange
from recsmith.recipes.features import FeatureEncoder, bag_sum, padded_bags
from recsmith.recipes.options import FitOptions
from recsmith.recipes.torch_training import (
    TORCH_TAGS,
    Batch,
    NegativeSampler,
    TorchParams,
    TorchRecipe,
    neighbour_fold_in,
    positive_pairs,
)

PAIR_CELLS = 1 << 22
"""Most (user, item, hidden unit) cells of one block of the numpy MLP forward (16 MB of float32)."""


class NeuMFParams(TorchParams):
    """Params of :class:`NeuMF`."""

    factors: int = Field(default=32, ge=1)
    """GMF embedding size (the paper's predictive factors)."""

    mlp_layers: list[int] = Field(default_factory=lambda: [64, 32, 16])
    """Sizes of the MLP's hidden layers; its embeddings are half the first layer each."""

    n_negatives: int = Field(default=4, ge=1)
    """Sampled unobserved items per positive."""

    pretrain: bool = False
    """Train GMF and MLP alone first (``pretrain_epochs`` each), then NeuMF from their weights."""

    pretrain_epochs: int = Field(default=5, ge=1)
    """Epochs of each pretraining."""

    lr: float = Field(default=0.002, gt=0.0)
    """Initial learning rate."""

    use_item_features: bool = False
    """Add the items' metadata (summed embeddings) to the MLP input."""

    use_user_features: bool = False
    """Add the users' metadata to the MLP input."""

    search_space = {
        "factors": IntRange(low=8, high=64, log=True),
        "lr": FloatRange(low=5e-4, high=1e-2, log=True),
        "reg": FloatRange(low=1e-7, high=1e-3, log=True),
        "n_negatives": IntRange(low=1, high=8),
        "epochs": IntRange(low=5, high=30),
        "batch_size": Choice(choices=(256, 1024, 4096)),
    }

    @field_validator("mlp_layers")
    @classmethod
    def _layers(cls, value: list[int]) -> list[int]:
        if not value or any(size < 2 for size in value) or value[0] % 2:
            raise ValueError(f"mlp_layers needs one or more sizes >= 2, the first even, got {list(value)}")
        return value


def _build_module(torch: Any, n_users: int, n_items: int, n_user_cols: int, n_item_cols: int, factors: int,
                  layers: list[int], sparse: bool) -> Any:
    nn = torch.nn
    half = layers[0] // 2

    def table(rows: int, width: int, padding: bool = False) -> Any:
        embedding = nn.Embedding(rows + padding, width, sparse=sparse, padding_idx=rows if padding else None)
        with torch.no_grad():
            nn.init.normal_(embedding.weight, std=0.01)
            if padding:
                embedding.weight[-1].zero_()
        return embedding

    class NeuMFModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mode = "neumf"
            self.gmf_user, self.gmf_item = table(n_users, factors), table(n_items, factors)
            self.mlp_user, self.mlp_item = table(n_users, half), table(n_items, half)
            self.user_feature = table(n_user_cols, half, padding=True) if n_user_cols else None
            self.item_feature = table(n_item_cols, half, padding=True) if n_item_cols else None
            width = 2 * half + half * bool(n_user_cols) + half * bool(n_item_cols)
            self.mlp = nn.ModuleList()
            for size in layers[1:] if len(layers) > 1 else ():
                self.mlp.append(nn.Linear(width, size))
                width = size
            self.first = nn.Linear(2 * half + half * bool(n_user_cols) + half * bool(n_item_cols), layers[0]) \
                if len(layers) == 1 else None
            self.h = nn.Linear(factors + (layers[0] if len(layers) == 1 else layers[-1]), 1)
            for linear in [*self.mlp, self.h] + ([self.first] if self.first is not None else []):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)

        def mlp_input(self, b: dict[str, Any], users: Any, items: Any) -> Any:
            parts = [self.mlp_user(users), self.mlp_item(items)]
            if self.user_feature is not None:
                parts.append((self.user_feature(b["u_cols"]) * b["u_vals"][..., None]).sum(-2))
            if self.item_feature is not None:
                parts.append((self.item_feature(b["i_cols"]) * b["i_vals"][..., None]).sum(-2))
            return torch.cat(parts, dim=-1)

        def forward(self, b: dict[str, Any], users: Any, items: Any) -> Any:
            gmf = self.gmf_user(users) * self.gmf_item(items)
            x = self.mlp_input(b, users, items)
            if self.first is not None:
                x = torch.relu(self.first(x))
            for linear in self.mlp:
                x = torch.relu(linear(x))
            if self.mode == "gmf":
                x = torch.zeros_like(x)
            elif self.mode == "mlp":
                gmf = torch.zeros_like(gmf)
            return self.h(torch.cat([gmf, x], dim=-1))[..., 0]

    return NeuMFModule()


class NeuMF(TorchRecipe):
    """Neural matrix factorisation: GMF + MLP with sampled negatives (see the module docstring)."""

    name = "neumf"
    Params: ClassVar[type[NeuMFParams]] = NeuMFParams
    tags = dataclasses.replace(TORCH_TAGS, uses_item_features=True, uses_user_features=True)
    quantized_arrays = ("gmf_user", "gmf_item", "mlp_user_first", "mlp_item_first")

    # -------------------------------------------------------------------------------- training
    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        p = self.params
        users, items = positive_pairs(data)
        if not len(users):
            raise DataError("the neumf recipe needs positive interactions (weight > 0)")
        self._sampler = NegativeSampler(users, items, data.n_items)
        matrix = data.interactions.matrix.tocsr()
        neg_users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        negative = matrix.data < 0  # explicit negative feedback (a "dislike") is a label-0 example
        self.user_encoder_ = FeatureEncoder.fit(data.user_features if p.use_user_features else None)
        self.item_encoder_ = FeatureEncoder.fit(data.item_features if p.use_item_features else None)
        self._user_bags = padded_bags(self.user_encoder_.encode(data.user_features, data.n_users))
        self._item_bags = padded_bags(self.item_encoder_.encode(data.item_features, data.n_items))
        self._n_users, self._n_items = data.n_users, data.n_items
        return {"user": np.concatenate([users, neg_users[negative]]),
                "item": np.concatenate([items, matrix.indices[negative].astype(np.int64)]),
                "label": np.concatenate([np.ones(len(users), np.float32), np.zeros(int(negative.sum()), np.float32)])}

    def _module(self, torch: Any) -> Any:
        p = self.params
        rows = 2 * (self._n_users + self._n_items)
        return _build_module(torch, self._n_users, self._n_items, self.user_encoder_.n_columns,
                             self.item_encoder_.n_columns, p.factors, p.mlp_layers, self._sparse(rows))

    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        k = self.params.n_negatives
        users, items, labels = examples["user"], examples["item"], examples["label"]
        positives = labels > 0
        negatives = self._sampler.sample(users[positives], k, rng).ravel()
        all_users = np.concatenate([users, np.repeat(users[positives], k)])
        all_items = np.concatenate([items, negatives])
        return {"users": all_users, "items": all_items,
                "label": np.concatenate([labels, np.zeros(len(negatives), np.float32)]),
                "u_cols": self._user_bags[0][all_users], "u_vals": self._user_bags[1][all_users],
                "i_cols": self._item_bags[0][all_items], "i_vals": self._item_bags[1][all_items]}

    def _loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        logits = module(b, b["users"], b["items"])
        l2 = sum(getattr(module, name)(b[key]).pow(2).sum() for name, key in (
            ("gmf_user", "users"), ("gmf_item", "items"), ("mlp_user", "users"), ("mlp_item", "items"))) / len(logits)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, b["label"]), l2

    def _train(self, torch: Any, device: Any, data: TrainingData, options: FitOptions,
               rng: np.random.Generator) -> None:
        p = self.params
        examples = self._prepare(data, rng)
        module = self._module(torch).to(device)
        if p.pretrain:
            quiet = FitOptions(device=options.device)
            for mode in ("gmf", "mlp"):
                module.mode = mode
                self._loop(torch, device, module, examples, quiet, rng, p.pretrain_epochs)
            with torch.no_grad():  # h = [α h_GMF ; (1 − α) h_MLP], α = 0.5: each was trained with the other half zero
                module.h.weight.mul_(0.5)
                module.h.bias.mul_(0.5)
            module.mode = "neumf"
        self._loop(torch, device, module, examples, options, rng, p.epochs)
        self._finish(module, torch)

    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        batch = {"u_cols": self._user_bags[0][users], "u_vals": self._user_bags[1][users],
                 "i_cols": self._item_bags[0][items], "i_vals": self._item_bags[1][items]}
        tensors = {key: torch.from_numpy(value) for key, value in batch.items()}
        return module(tensors, torch.from_numpy(users), torch.from_numpy(items))

    def _export(self, module: Any, torch: Any) -> None:
        def array(tensor: Any) -> np.ndarray:
            return tensor.detach().cpu().numpy().astype(np.float32)

        linears = ([module.first] if module.first is not None else []) + list(module.mlp)
        first = linears[0]
        weight, bias = array(first.weight), array(first.bias)
        half = self.params.mlp_layers[0] // 2
        mlp_user, mlp_item = array(module.mlp_user.weight), array(module.mlp_item.weight)
        user_part = mlp_user @ weight[:, :half].T
        item_part = mlp_item @ weight[:, half:2 * half].T + bias
        column = 2 * half
        if module.user_feature is not None:
            features = bag_sum(self._user_bags, array(module.user_feature.weight)[:-1])
            user_part += features @ weight[:, column:column + half].T
            column += half
        if module.item_feature is not None:
            features = bag_sum(self._item_bags, array(module.item_feature.weight)[:-1])
            item_part += features @ weight[:, column:column + half].T
        arrays: dict[str, np.ndarray] = {
            "gmf_user": array(module.gmf_user.weight), "gmf_item": array(module.gmf_item.weight),
            "mlp_user_first": np.ascontiguousarray(user_part), "mlp_item_first": np.ascontiguousarray(item_part),
            "h_w": array(module.h.weight)[0], "h_b": array(module.h.bias),
            "first_is_mlp": np.asarray([module.first is None]),
        }
        rest = linears[1:]
        arrays["n_rest"] = np.asarray([len(rest)])
        for j, linear in enumerate(rest):
            arrays[f"rest{j}_w"], arrays[f"rest{j}_b"] = array(linear.weight), array(linear.bias)
        self.arrays_ = arrays
        self._set_arrays(dict(arrays))

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.gmf_user_ = np.ascontiguousarray(arrays["gmf_user"], dtype=np.float32)
        self.gmf_item_ = np.ascontiguousarray(arrays["gmf_item"], dtype=np.float32)
        self.mlp_user_first_ = np.ascontiguousarray(arrays["mlp_user_first"], dtype=np.float32)
        self.mlp_item_first_ = np.ascontiguousarray(arrays["mlp_item_first"], dtype=np.float32)
        self.h_w_, self.h_b_ = np.asarray(arrays["h_w"], np.float32), np.asarray(arrays["h_b"], np.float32)
        self.rest_ = [(np.asarray(arrays[f"rest{j}_w"], np.float32), np.asarray(arrays[f"rest{j}_b"], np.float32))
                      for j in range(int(np.asarray(arrays["n_rest"])[0]))]

    # -------------------------------------------------------------------------------- scoring
    def _user_state(self, histories: sp.csr_matrix, users: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if users is not None:
            return self.gmf_user_[users], self.mlp_user_first_[users]
        stacked = np.hstack([self.gmf_user_, self.mlp_user_first_])
        folded = neighbour_fold_in(histories, self._check_fitted(), stacked)
        return folded[:, :self.gmf_user_.shape[1]], folded[:, self.gmf_user_.shape[1]:]

    def _pair_logits(self, gmf_user: np.ndarray, first_user: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """Logits of each user (rows) with ``items`` (all items when None): ``float32[n_users, n_items]``."""
        gmf_item = self.gmf_item_ if items is None else self.gmf_item_[items]
        first_item = self.mlp_item_first_ if items is None else self.mlp_item_first_[items]
        size = self.gmf_user_.shape[1]
        gmf = gmf_user @ (gmf_item * self.h_w_[:size]).T
        out = np.empty_like(gmf)
        step = max(1, PAIR_CELLS // max(len(gmf_item) * first_item.shape[1], 1))
        for start in range(0, len(gmf_user), step):
            x = np.maximum(first_user[start:start + step, None, :] + first_item[None, :, :], 0.0)
            for weight, bias in self.rest_:
                x = np.maximum(x @ weight.T + bias, 0.0)
            out[start:start + step] = x @ self.h_w_[size:]
        return (gmf + out + self.h_b_[0]).astype(np.float32, copy=False)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        gmf_user, first_user = self._user_state(histories, users)
        return self._pair_logits(gmf_user, first_user, None)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Logits of (user, item) pairs (NaN where the user or the item is -1); one pair at a time, not a
        dense block per user."""
        users, items = self._pair_indices(users, items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        both = np.flatnonzero((users >= 0) & (items >= 0))
        size = self.gmf_user_.shape[1]
        for start in range(0, len(both), 1 << 16):
            rows = both[start:start + (1 << 16)]
            u, i = users[rows], items[rows]
            x = np.maximum(self.mlp_user_first_[u] + self.mlp_item_first_[i], 0.0)
            for weight, bias in self.rest_:
                x = np.maximum(x @ weight.T + bias, 0.0)
            gmf = (self.gmf_user_[u] * self.gmf_item_[i]) @ self.h_w_[:size]
            out[rows] = gmf + x @ self.h_w_[size:] + self.h_b_[0]
        return out
