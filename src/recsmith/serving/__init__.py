"""Serving: the one pipeline from a trained model to recommendations in raw ids (see
:mod:`recsmith.serving.campaign`)."""
