"""Built-in datasets: the bundled MovieLens ml-latest-small, and MovieLens 100K / 1M from a path or a download.

ml-latest-small ships inside the package with its GroupLens licence (``ml-latest-small/README.txt``).
MovieLens 100K and 1M may not be redistributed, so recsmith reads them from a folder you give it or
downloads them from GroupLens for you.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, DataError
from recsmith.jobs.importing import ImportReport, import_dataset
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

INTERACTIONS_SCHEMA = Schema.default("interactions").to_dict()

MOVIES_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TITLE", "type": ["null", "string"], "textual": True},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    ],
    "version": "1.0",
}


ML_100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                  "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                  "War", "Western"]
"""MovieLens 100K's genres (``u.genre``), in the order of ``u.item``'s last 19 columns, its 0/1 genre flags."""


def _users_schema(*fields: dict) -> dict:
    return {"type": "record", "name": "Users", "namespace": "com.amazonaws.personalize.schema",
            "fields": [{"name": "USER_ID", "type": "string"}, *fields], "version": "1.0"}


ML_100K_USERS_SCHEMA = _users_schema(
    {"name": "AGE", "type": ["null", "int"]},
    {"name": "GENDER", "type": ["null", "string"], "categorical": True},
    {"name": "OCCUPATION", "type": ["null", "string"], "categorical": True},
    {"name": "ZIP", "type": ["null", "string"]},
)
"""``u.user``: age in years (numerical), gender and occupation (categorical), zip code (a plain string)."""

ML_1M_USERS_SCHEMA = _users_schema(
    {"name": "GENDER", "type": ["null", "string"], "categorical": True},
    {"name": "AGE", "type": ["null", "int"]},
    {"name": "OCCUPATION", "type": ["null", "string"], "categorical": True},
    {"name": "ZIP", "type": ["null", "string"]},
)
"""``users.dat``: AGE is the lower bound of the user's age range (1, 18, 25, ..., 56: numerical); OCCUPATION a
code from 0 to 20 (categorical, see ml-1m's README)."""


@dataclass(frozen=True)
class FileImport:
    """One import of a dataset's file: which file, into which dataset, read how (``flags``: 0/1 columns folded
    into one multi-valued field, as ``recsmith import --flags``; ``optional``: imported when the folder has it)."""

    dataset_type: str
    filename: str
    column_map: dict[str, str]
    schema: dict
    sep: str | None = None
    header: bool = True
    names: list[str] | None = None
    encoding: str = "utf-8"
    flags: dict[str, list[str]] | None = None
    optional: bool = False


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset recsmith knows how to load."""

    name: str
    description: str
    bundled: bool
    url: str | None
    files: list[FileImport] = field(default_factory=list)


DATASETS: dict[str, BuiltinDataset] = {
    "ml-latest-small": BuiltinDataset(
        name="ml-latest-small",
        description="MovieLens latest-small (2016): 100,004 ratings, 671 users, 9,066 movies; bundled",
        bundled=True,
        url=None,
        files=[
            FileImport("interactions", "ratings.csv",
                       {"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE",
                        "timestamp": "TIMESTAMP"}, INTERACTIONS_SCHEMA),
            FileImport("items", "movies.csv",
                       {"movieId": "ITEM_ID", "title": "TITLE", "genres": "GENRES"}, MOVIES_SCHEMA),
        ],
    ),
    "ml-100k": BuiltinDataset(
        name="ml-100k",
        description="MovieLens 100K (1998): 100,000 ratings, 943 users, 1,682 movies; path or download",
        bundled=False,
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        files=[
            FileImport("interactions", "u.data", {}, INTERACTIONS_SCHEMA, sep="\t", header=False,
                       names=["USER_ID", "ITEM_ID", "EVENT_VALUE", "TIMESTAMP"]),
            FileImport("items", "u.item", {"RELEASED": "-", "VIDEO_RELEASED": "-", "URL": "-"}, MOVIES_SCHEMA,
                       sep="|", header=False, encoding="latin-1",
                       names=["ITEM_ID", "TITLE", "RELEASED", "VIDEO_RELEASED", "URL", *ML_100K_GENRES],
                       flags={"GENRES": ML_100K_GENRES}),
            FileImport("users", "u.user", {}, ML_100K_USERS_SCHEMA, sep="|", header=False,
                       names=["USER_ID", "AGE", "GENDER", "OCCUPATION", "ZIP"], optional=True),
        ],
    ),
    "ml-1m": BuiltinDataset(
        name="ml-1m",
        description="MovieLens 1M (2003): 1,000,209 ratings, 6,040 users, 3,706 movies; path or download",
        bundled=False,
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        files=[
            FileImport("interactions", "ratings.dat", {}, INTERACTIONS_SCHEMA, sep="::", header=False,
                       names=["USER_ID", "ITEM_ID", "EVENT_VALUE", "TIMESTAMP"]),
            FileImport("items", "movies.dat", {}, MOVIES_SCHEMA, sep="::", header=False,
                       names=["ITEM_ID", "TITLE", "GENRES"], encoding="latin-1"),
            FileImport("users", "users.dat", {}, ML_1M_USERS_SCHEMA, sep="::", header=False,
                       names=["USER_ID", "GENDER", "AGE", "OCCUPATION", "ZIP"], optional=True),
        ],
    ),
}


def list_datasets() -> list[BuiltinDataset]:
    """The datasets ``recsmith datasets load`` knows."""
    return list(DATASETS.values())


def get_dataset(name: str) -> BuiltinDataset:
    """A built-in dataset by name (ConfigError listing the known names otherwise)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


def bundled_path(name: str) -> Path:
    """Folder of a dataset shipped inside the package."""
    return Path(str(resources.files("recsmith.datasets").joinpath(name)))


def export_bundled(name: str, target: Path) -> list[Path]:
    """Copy a bundled dataset's files, with its licence, into ``target`` (created if missing).

    Parameters
    ----------
    name
        A dataset shipped inside the package (``ml-latest-small``).
    target
        Folder to copy into; a file already there with the same name is replaced.

    Returns
    -------
    list of Path
        The files written, in name order.
    """
    dataset = get_dataset(name)
    if not dataset.bundled:
        raise ConfigError(f"dataset {name!r} is not shipped with recsmith (GroupLens does not allow it); "
                          f"the bundled one is {', '.join(d.name for d in DATASETS.values() if d.bundled)}")
    source = bundled_path(name)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.iterdir()):
        if path.is_file():
            destination = target / path.name
            shutil.copyfile(path, destination)
            written.append(destination)
    return written


def download(dataset: BuiltinDataset, target: Path) -> Path:
    """Download and unpack a dataset's zip from its publisher into ``target``; returns the data folder."""
    if not dataset.url:
        raise ConfigError(f"dataset {dataset.name!r} has no download address")
    logger.info("downloading %s", dataset.url)
    try:
        with urllib.request.urlopen(dataset.url, timeout=60) as response:  # noqa: S310 (fixed https URL)
            payload = response.read()
    except OSError as exc:
        raise DataError(
            f"could not download {dataset.url}: {exc}. Download it yourself and pass --path FOLDER"
        ) from exc
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        archive.extractall(target)
    return target / dataset.name


def load_dataset(
    store: Store,
    name: str,
    dataset_group: str,
    *,
    path: str | Path | None = None,
    allow_download: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ImportReport]:
    """Import a built-in dataset's interactions, items and (MovieLens 100K and 1M) users into a dataset group
    (full mode): ml-100k's items get GENRES from ``u.item``'s genre flags, and its users AGE, GENDER,
    OCCUPATION and ZIP from ``u.user`` (ml-1m's from ``users.dat``; either is imported when the folder has it).

    Parameters
    ----------
    store : Store
        Where to import.
    name : str
        ``ml-latest-small`` (bundled), ``ml-100k`` or ``ml-1m``.
    dataset_group : str
        The dataset group (created if new).
    path : path, optional
        A folder holding the dataset's files (for ml-100k / ml-1m, the unpacked GroupLens zip).
    allow_download : bool
        Download from GroupLens when no ``path`` is given and the dataset is not bundled.

    Returns
    -------
    list of ImportReport
        One report per file imported.
    """
    dataset = get_dataset(name)
    with tempfile.TemporaryDirectory(prefix="recsmith-dataset-") as tmp:
        workdir = Path(tmp)
        if path is not None:
            folder = Path(path)
        elif dataset.bundled:
            folder = bundled_path(dataset.name)
        elif allow_download:
            folder = download(dataset, workdir / "download")
        else:
            raise ConfigError(
                f"dataset {name!r} is not bundled (its licence forbids redistribution): give --path FOLDER "
                f"holding {', '.join(f.filename for f in dataset.files)}, or --download to fetch {dataset.url}"
            )
        missing = [spec.filename for spec in dataset.files
                   if not spec.optional and not (folder / spec.filename).is_file()]
        if missing:
            raise DataError(f"{folder} does not hold {', '.join(missing)} for dataset {name!r}")
        reports = []
        for spec in dataset.files:
            if spec.optional and not (folder / spec.filename).is_file():
                logger.info("%s: no %s, so no %s imported", folder, spec.filename, spec.dataset_type)
                continue
            reports.append(import_dataset(
                store, dataset_group, spec.dataset_type, str(folder / spec.filename),
                schema=Schema.from_json(spec.schema), column_map=spec.column_map or None, sep=spec.sep,
                header=spec.header, names=spec.names, mode="full", progress=progress, encoding=spec.encoding,
                flags=spec.flags,
            ))
    return reports


__all__ = ["BuiltinDataset", "DATASETS", "ML_100K_GENRES", "bundled_path", "get_dataset", "list_datasets",
           "load_dataset"]
