"""Serving: turn a trained model into recommendations in raw ids."""

from recsmith.serving.recommender import RecommendedItem, recommend_for_user

__all__ = ["RecommendedItem", "recommend_for_user"]
