"""Serving: turn a trained model into recommendations in raw ids."""

from recsmith.serving.recommender import RecommendedItem, filter_mask, recommend_for_user

__all__ = ["RecommendedItem", "filter_mask", "recommend_for_user"]
