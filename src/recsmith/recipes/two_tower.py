"""Two towers (the retrieval model of YouTube and Google, Yi et al. 2019), trained with PyTorch, served by numpy.

- **User tower:** the user's id embedding + the sum of their metadata embeddings + the mean embedding of the
  items in their history, through a residual MLP, L2-normalised.
- **Item tower:** the item's id embedding + the sum of its metadata embeddings, through a residual MLP,
  L2-normalised.
- **Score:** the dot product of the two (a cosine), divided by ``temperature``.
- **Loss:** in-batch sampled softmax, each positive against the other items of its batch, with the logQ
  correction for their popularity (Yi et al.); an item that is another row's positive too is not a negative.

Ids are dropped at random in training (``id_dropout``), so each tower also learns to work without them: users the
model never saw get a vector from their history alone, and items with no interactions (put after training, or
held out by the ``cold-items`` protocol) from their metadata alone. This is recsmith's cold-start recipe,
Personalize's ``-coldstart``.

References
----------
Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations", RecSys 2019.
Covington, Adams and Sargin, "Deep Neural Networks for YouTube Recommendations", RecSys 2016.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import DataError
from recsmith.recipes.base import FloatRange, IntRange, ItemSets, SetScorer
from recsmith.recipes.factorization import FactorModel, factor_set_scorer
from recsmith.recipes.features import FeatureEncoder, bag_sum, padded_bags
from recsmith.recipes.torch_training import TORCH_TAGS, Batch, TorchParams, TorchRecipe, positive_pairs


class TwoTowerParams(TorchParams):
    """Params of :class:`TwoTower`."""

    factors: int = Field(default=64, ge=1)
    """Dimensions of the embeddings and of the towers' output."""

    temperature: float = Field(default=0.1, gt=0.0)
    """Softmax temperature of the cosine scores."""

    id_dropout: float = Field(default=0.3, ge=0.0, lt=1.0)
    """Chance of training a row without its id (so the towers learn from history and metadata alone)."""

    history_samples: int = Field(default=32, ge=1)
    """History items sampled per user and step for the history mean (serving uses the whole history)."""

    lr: float = Field(default=0.005, gt=0.0)
    """Initial learning rate."""

    use_item_features: bool = True
    """Read the items dataset's fields (when the group has one)."""

    use_user_features: bool = True
    """Read the users dataset's fields (when the group has one)."""

    search_space = {
        "factors": IntRange(low=16, high=128, log=True),
        "temperature": FloatRange(low=0.02, high=0.5, log=True),
        "id_dropout": FloatRange(low=0.0, high=0.6),
        "lr": FloatRange(low=1e-3, high=2e-2, log=True),
        "epochs": IntRange(low=5, high=40),
    }


def _build_module(torch: Any, n_users: int, n_items: int, n_user_cols: int, n_item_cols: int, factors: int,
                  sparse: bool) -> Any:
    nn = torch.nn
    functional = torch.nn.functional

    def table(rows: int) -> Any:
        embedding = nn.Embedding(rows + 1, factors, sparse=sparse, padding_idx=rows)  # the last row: "none"
        with torch.no_grad():
            nn.init.normal_(embedding.weight, std=0.05)
            embedding.weight[-1].zero_()
        return embedding

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(factors, factors)
            self.out = nn.Linear(factors, factors)

        def forward(self, x: Any) -> Any:
            return functional.normalize(x + self.out(functional.relu(self.hidden(x))), dim=-1)

    class TwoTowerModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_id, self.user_feature = table(n_users), table(n_user_cols)
            self.history = table(n_items)
            self.item_id, self.item_feature = table(n_items), table(n_item_cols)
            self.user_tower, self.item_tower = Tower(), Tower()

        def user(self, b: dict[str, Any]) -> Any:
            x = (self.user_id(b["user"]) + (self.user_feature(b["u_cols"]) * b["u_vals"][..., None]).sum(1)
                 + (self.history(b["h_cols"]) * b["h_vals"][..., None]).sum(1))
            return self.user_tower(x)

        def item(self, b: dict[str, Any]) -> Any:
            return self.item_tower(self.item_id(b["item"]) + (self.item_feature(b["i_cols"])
                                                              * b["i_vals"][..., None]).sum(1))

    return TwoTowerModule()


class TwoTower(TorchRecipe, FactorModel):
    """Two towers with in-batch sampled softmax; scores items and users it never saw (see the module docstring)."""

    name = "two-tower"
    Params: ClassVar[type[TwoTowerParams]] = TwoTowerParams
    tags = dataclasses.replace(TORCH_TAGS, uses_item_features=True, uses_user_features=True, similar_items=True,
                               cold_start_items=True)
    quantized_arrays = ("user_vectors", "item_vectors", "history_vectors", "item_feature_vectors")

    # -------------------------------------------------------------------------------- training
    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        p = self.params
        users, items = positive_pairs(data)
        if not len(users):
            raise DataError("the two-tower recipe needs positive interactions (weight > 0)")
        self.user_encoder_ = FeatureEncoder.fit(data.user_features if p.use_user_features else None)
        self.item_encoder_ = FeatureEncoder.fit(data.item_features if p.use_item_features else None)
        self._user_bags = padded_bags(self.user_encoder_.encode(data.user_features, data.n_users))
        self._item_bags = padded_bags(self.item_encoder_.encode(data.item_features, data.n_items))
        self._n_users, self._n_items = data.n_users, data.n_items
        positive = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)),
                                 shape=(data.n_users, data.n_items))
        positive.sum_duplicates()
        self._positive = positive
        counts = np.bincount(items, minlength=data.n_items).astype(np.float64)
        self._log_q = np.log(np.maximum(counts, 1.0) / max(len(items), 1)).astype(np.float32)
        return {"user": users, "item": items}

    def _module(self, torch: Any) -> Any:
        rows = 2 * self._n_items + self._n_users + len(self.user_encoder_.fields) + len(self.item_encoder_.fields)
        return _build_module(torch, self._n_users, self._n_items, self.user_encoder_.n_columns,
                             self.item_encoder_.n_columns, self.params.factors, self._sparse(rows))

    def _history_sample(self, users: np.ndarray, targets: np.ndarray, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
        """``history_samples`` items drawn from each user's positives (never the row's target), as padded bags
        whose weights average them."""
        h = self.params.history_samples
        indptr, indices = self._positive.indptr, self._positive.indices
        starts, lengths = indptr[users], indptr[users + 1] - indptr[users]
        draws = starts[:, None] + (rng.random((len(users), h)) * lengths[:, None]).astype(np.int64)
        cols = indices[np.minimum(draws, len(indices) - 1)].astype(np.int64)
        cols[(cols == targets[:, None]) | (lengths[:, None] == 0)] = self._n_items  # padding: contributes 0
        used = (cols != self._n_items).sum(1, keepdims=True)
        vals = np.where(cols != self._n_items, 1.0 / np.maximum(used, 1), 0.0).astype(np.float32)
        return cols, vals

    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        p = self.params
        users, items = examples["user"], examples["item"]
        user_ids = np.where(rng.random(len(users)) < p.id_dropout, self._n_users, users)
        item_ids = np.where(rng.random(len(items)) < p.id_dropout, self._n_items, items)
        h_cols, h_vals = self._history_sample(users, items, rng)
        same = items[:, None] == items[None, :]
        np.fill_diagonal(same, False)
        return {"user": user_ids, "item": item_ids, "u_cols": self._user_bags[0][users],
                "u_vals": self._user_bags[1][users], "i_cols": self._item_bags[0][items],
                "i_vals": self._item_bags[1][items], "h_cols": h_cols, "h_vals": h_vals,
                "log_q": self._log_q[items], "same": same}

    def _loss(self, module: Any, b: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        user, item = module.user(b), module.item(b)
        logits = user @ item.T / self.params.temperature - b["log_q"][None, :]
        logits = logits.masked_fill(b["same"], float("-inf"))
        target = torch.arange(len(logits), device=logits.device)
        l2 = (module.user_id(b["user"]).pow(2).sum() + module.item_id(b["item"]).pow(2).sum()) / len(logits)
        return torch.nn.functional.cross_entropy(logits, target), l2

    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        trained = torch.from_numpy(np.asarray(self._positive.sum(axis=0)).ravel() > 0)
        history = torch.from_numpy(_mean_rows(self._positive[users], np.eye(self._n_items, dtype=np.float32)))
        tensor = torch.from_numpy
        x = (module.user_id(tensor(users)) + (module.user_feature(tensor(self._user_bags[0][users]))
                                              * tensor(self._user_bags[1][users])[..., None]).sum(1)
             + history @ module.history.weight[:-1])
        user = module.user_tower(x)
        item_id = module.item_id(tensor(items)) * trained[tensor(items)][:, None]
        item = module.item_tower(item_id + (module.item_feature(tensor(self._item_bags[0][items]))
                                            * tensor(self._item_bags[1][items])[..., None]).sum(1))
        return (user * item).sum(1) / self.params.temperature

    def _export(self, module: Any, torch: Any) -> None:
        def weights(layer: Any) -> np.ndarray:
            return layer.weight.detach().cpu().numpy().astype(np.float32)

        arrays: dict[str, np.ndarray] = {
            "user_id": weights(module.user_id)[:-1], "user_feature_vectors": weights(module.user_feature)[:-1],
            "history_vectors": weights(module.history)[:-1], "item_id": weights(module.item_id)[:-1],
            "item_feature_vectors": weights(module.item_feature)[:-1],
        }
        for tower in ("user_tower", "item_tower"):
            for layer in ("hidden", "out"):
                linear = getattr(getattr(module, tower), layer)
                arrays[f"{tower}_{layer}_w"] = weights(linear)
                arrays[f"{tower}_{layer}_b"] = linear.bias.detach().cpu().numpy().astype(np.float32)
        trained = np.asarray(self._positive.sum(axis=0)).ravel() > 0
        arrays["item_id"][~trained] = 0.0  # items without interactions: from their metadata alone
        self.tower_weights_ = _tower_weights(arrays)  # what _tower reads
        items = arrays["item_id"] + bag_sum(self._item_bags, arrays["item_feature_vectors"])
        arrays["item_vectors"] = self._tower("item_tower", items)
        history = _mean_rows(self._positive, arrays["history_vectors"])
        users = arrays["user_id"] + bag_sum(self._user_bags, arrays["user_feature_vectors"]) + history
        arrays["user_vectors"] = self._tower("user_tower", users)
        arrays |= self.item_encoder_.state("item_encoder_")
        for name in ("user_id", "item_id", "user_feature_vectors"):
            arrays.pop(name)  # folded into user_vectors / item_vectors
        self.arrays_ = arrays
        self._set_arrays(dict(arrays))

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.tower_weights_ = _tower_weights(arrays)
        self.user_factors_ = np.ascontiguousarray(arrays["user_vectors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32)
        self.history_vectors_ = np.asarray(arrays["history_vectors"], dtype=np.float32)
        self.item_feature_vectors_ = np.asarray(arrays["item_feature_vectors"], dtype=np.float32)
        if "item_encoder_fields" in arrays:
            self.item_encoder_ = FeatureEncoder.from_state(arrays, "item_encoder_")

    # -------------------------------------------------------------------------------- scoring
    def _tower(self, tower: str, x: np.ndarray) -> np.ndarray:
        """The numpy forward of a tower (the torch module's, to float rounding)."""
        w = self.tower_weights_
        hidden = np.maximum(x @ w[f"{tower}_hidden_w"].T + w[f"{tower}_hidden_b"], 0.0)
        out = x + hidden @ w[f"{tower}_out_w"].T + w[f"{tower}_out_b"]
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(out / norms, dtype=np.float32)

    def _user_vectors(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        if users is not None:
            return self.user_factors_[users]
        positive = sp.csr_matrix(histories, dtype=np.float32, copy=True)
        positive.data = (positive.data > 0).astype(np.float32)
        positive.eliminate_zeros()
        return self._tower("user_tower", _mean_rows(positive, self.history_vectors_))

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        scores = self._user_vectors(histories, users) @ self.item_factors_.T
        return (scores / np.float32(self.params.temperature)).astype(np.float32, copy=False)

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """Transpose scoring of ``u·v_i / temperature`` with
        :func:`~recsmith.recipes.factorization.factor_set_scorer`."""
        return factor_set_scorer(self.user_factors_, self.item_factors_ / np.float64(self.params.temperature), sets)

    def score_new_items(self, histories: sp.csr_matrix, users: np.ndarray | None,
                        features: FeatureTable) -> np.ndarray:
        """Scores of items never seen in training, from their metadata (see :meth:`Recipe.score_new_items`)."""
        self._check_fitted()
        bags = padded_bags(self.item_encoder_.encode(features, features.n_rows))
        vectors = self._tower("item_tower", bag_sum(bags, self.item_feature_vectors_))
        scores = self._user_vectors(histories, users) @ vectors.T
        return (scores / np.float32(self.params.temperature)).astype(np.float32)




def _mean_rows(pattern: sp.csr_matrix, table: np.ndarray) -> np.ndarray:
    """Each row's mean of ``table``'s rows over its stored columns (zeros for an empty row)."""
    binary = sp.csr_matrix((np.ones(pattern.nnz, dtype=np.float32), pattern.indices, pattern.indptr),
                           shape=pattern.shape)
    counts = np.maximum(np.diff(binary.indptr), 1).astype(np.float32)[:, None]
    return np.asarray(binary @ table, dtype=np.float32) / counts


def _tower_weights(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The towers' MLP weights among the state arrays."""
    return {name: np.asarray(arrays[name], dtype=np.float32) for name in arrays
            if name.startswith(("user_tower_", "item_tower_"))}
