"""Serving: the one pipeline from a trained model to recommendations in raw ids (see
:mod:`recsmith.serving.campaign`)."""

MAX_RESULTS = 500
"""The most items one answer holds: ``num_results`` and a ranking's ``input_list`` over HTTP, ``--num`` of ``recsmith
recommend`` and ``similar`` (defined here, where importing it costs nothing, for the API's schemas and the CLI)."""
