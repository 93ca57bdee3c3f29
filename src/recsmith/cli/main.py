"""The ``recsmith`` command line: the app of :mod:`recsmith.cli.app` with every command group on it.

Each command group lives in its own module and imports only :mod:`recsmith.cli.app` (and the helpers of the
groups it builds on); this module puts them on the app, in the order ``recsmith --help`` lists them.
"""

from __future__ import annotations

import logging

from recsmith.cli.app import app, handle_errors
from recsmith.cli.audit import audit_app
from recsmith.cli.batch import inference_app, segment_app
from recsmith.cli.dataset_groups import groups_app
from recsmith.cli.datasets import datasets_app
from recsmith.cli.describe import describe
from recsmith.cli.evaluate import evaluate
from recsmith.cli.export import export
from recsmith.cli.importing import import_app
from recsmith.cli.quickstart import quickstart
from recsmith.cli.recommend import recommend, similar
from recsmith.cli.schedule import schedule_app
from recsmith.cli.serving import campaign_app, events_app, filter_app, items_app, keys_app, serve, users_app
from recsmith.cli.solution_versions import versions_app
from recsmith.cli.train import train
from recsmith.cli.tune import tune

for command in (describe, train, evaluate, recommend, similar, export, quickstart, handle_errors(tune), serve):
    app.command()(command)
for group, name in ((import_app, "import"), (datasets_app, "datasets"), (versions_app, "solution-versions"),
                    (schedule_app, "schedule"), (campaign_app, "campaign"), (filter_app, "filter"),
                    (keys_app, "keys"), (events_app, "events"), (users_app, "users"), (items_app, "items"),
                    (audit_app, "audit"), (groups_app, "dataset-groups"), (inference_app, "batch-inference"),
                    (segment_app, "batch-segment")):
    app.add_typer(group, name=name)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
