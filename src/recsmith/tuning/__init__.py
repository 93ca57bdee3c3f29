"""Hyperparameter tuning with Optuna (``recsmith tune``): search spaces, studies in the store's database."""

from recsmith.tuning.space import search_space, space_json, tunable_recipes
from recsmith.tuning.storage import group_study_names, read_study, set_study_attr, study_name, study_storage
from recsmith.tuning.tune import (
    RANKING_METRICS,
    RATING_METRICS,
    TrialReport,
    TuneResult,
    check_settings,
    direction_of,
    tune_recipe,
)

__all__ = [
    "RANKING_METRICS", "RATING_METRICS", "TrialReport", "TuneResult", "check_settings", "direction_of",
    "group_study_names", "read_study", "search_space", "set_study_attr", "space_json", "study_name", "study_storage",
    "tunable_recipes", "tune_recipe",
]
