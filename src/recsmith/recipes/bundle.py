"""The model bundle: a fitted recipe with the vocabularies it was trained on, written atomically.

This is what a solution version's artifact holds, and what serving, batch jobs and the CLI load (it lives
with the recipes, below the store, which only records where an artifact is).

Layout of an artifact folder::

    model/          the recipe's own ``arrays/*.npy`` + ``meta.json``
    users.npy       raw user ids in dense order (unicode array, no pickle)
    items.npy       raw item ids in dense order
    popularity.npy  float32 item popularity (users with a positive interaction), the fallback ranking
    meta.json       solution version id, recipe, counts; ``checksums``: the SHA-256 of every other file

Integrity: ``meta.json``'s ``checksums`` hold each file's SHA-256 (of its plaintext), checked at load, so a
truncated or altered file is refused (:class:`recsmith.errors.ArtifactIntegrityError`, naming the file).

Encryption at rest (``RECSMITH_ENCRYPTION_KEY``, :func:`artifact_key`): every file, ``meta.json`` too, is then
stored as ``MAGIC | 12-byte random nonce | AES-256-GCM ciphertext | 16-byte tag``, with the file's path inside
the artifact (``model/arrays/train_data.npy``) as associated data, so files cannot be swapped for one another.
An encrypted artifact is decrypted into memory at load: its arrays are never memory-mapped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from recsmith.atomic import atomic_folder
from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import ArtifactIntegrityError, ArtifactKeyError, ConfigError, DataError, NotFoundError
from recsmith.recipes.base import Recipe
from recsmith.recipes.registry import load_recipe

logger = logging.getLogger(__name__)

MAGIC = b"RSMAES1\n"
"""The first bytes of an encrypted artifact file."""
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK = 1 << 22
CIPHER = "AES-256-GCM"
KEY_SETTING = "RECSMITH_ENCRYPTION_KEY"
KEY_HINT = 'make one with: python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
BOOKKEEPING = ("checksums", "encryption")
"""``meta.json`` keys written by :meth:`TrainedModel.save` about the files themselves (not in ``meta``)."""


def artifact_key(value: bytes | str | SecretStr | None) -> bytes | None:
    """The 32-byte AES key from ``RECSMITH_ENCRYPTION_KEY``'s text: 64 hex digits, or base64 (standard or
    URL-safe, 44 characters) of 32 bytes; raw 32 bytes pass through. None or empty: no encryption.

    Raises
    ------
    ConfigError
        When the text is neither (the message names the setting, never the value).
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) != 32:
            raise ConfigError(f"an artifact encryption key is 32 bytes, not {len(value)}")
        return value
    text = (value.get_secret_value() if isinstance(value, SecretStr) else value).strip()
    if not text:
        return None
    key: bytes | None = None
    if len(text) == 64:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise ConfigError(f"{KEY_SETTING} must be 32 bytes written as 64 hex digits or as base64 (44 characters); "
                          f"{KEY_HINT}")
    return key


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a relative POSIX path, sorted."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _aad(relative: str) -> bytes:
    return b"recsmith-artifact:" + relative.encode()


def _encrypt_file(path: Path, relative: str, key: bytes) -> None:
    """Replace ``path`` by its encryption (streamed: a file of any size)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    nonce = os.urandom(NONCE_BYTES)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(_aad(relative))
    sealed = path.with_name(path.name + ".sealing")
    with path.open("rb") as source, sealed.open("wb") as target:
        target.write(MAGIC + nonce)
        while block := source.read(CHUNK):
            target.write(encryptor.update(block))
        target.write(encryptor.finalize() + encryptor.tag)
    os.replace(sealed, path)


class _ArtifactReader:
    """Reads an artifact's files into memory, decrypting them when it is encrypted and checking each against
    its SHA-256 in ``meta.json`` (``Recipe.load``'s ``read``)."""

    def __init__(self, folder: Path, key: bytes | None) -> None:
        self.folder = folder
        self.key = key
        self.checksums: dict[str, str] | None = None
        self.encrypted = (folder / "meta.json").read_bytes()[:len(MAGIC)] == MAGIC

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.folder).as_posix()

    def __call__(self, path: Path) -> bytes:
        relative = self.relative(path)
        data = self._decrypt(path, relative) if self.encrypted else Path(path).read_bytes()
        if self.checksums is not None and relative != "meta.json":
            expected = self.checksums.get(relative)
            if expected is None:
                raise ArtifactIntegrityError(f"{path}: a file the artifact's meta.json does not list; the artifact "
                                             "was altered after it was written")
            if hashlib.sha256(data).hexdigest() != expected:
                raise ArtifactIntegrityError(f"{path} does not match the SHA-256 recorded in meta.json (truncated or "
                                             "altered); train the solution version again")
        return data

    def _decrypt(self, path: Path, relative: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if self.key is None:
            raise ArtifactKeyError(f"the artifact at {self.folder} is encrypted; set {KEY_SETTING} to the key it was "
                                   "written with")
        size = Path(path).stat().st_size
        with Path(path).open("rb") as handle:
            head = handle.read(len(MAGIC) + NONCE_BYTES)
            if head[:len(MAGIC)] != MAGIC or size < len(head) + TAG_BYTES:
                raise ArtifactIntegrityError(f"{path} is not encrypted (or is cut short) in an encrypted artifact; "
                                             "the artifact was altered after it was written")
            handle.seek(size - TAG_BYTES)
            tag = handle.read(TAG_BYTES)
            handle.seek(len(head))
            decryptor = Cipher(algorithms.AES(self.key), modes.GCM(head[len(MAGIC):], tag)).decryptor()
            decryptor.authenticate_additional_data(_aad(relative))
            out = bytearray()
            remaining = size - len(head) - TAG_BYTES
            while remaining > 0:
                block = handle.read(min(CHUNK, remaining))
                if not block:
                    break
                remaining -= len(block)
                out += decryptor.update(block)
        try:
            out += decryptor.finalize()
        except InvalidTag:
            raise ArtifactKeyError(f"cannot decrypt {path}: {KEY_SETTING} is not the key the artifact was written "
                                   "with, or the file was altered") from None
        return bytes(out)

    def verify_files(self) -> None:
        """Check that the folder holds exactly the files ``checksums`` lists (and, unencrypted, their SHA-256:
        an encrypted file is checked as it is decrypted)."""
        assert self.checksums is not None
        present = set(_files(self.folder)) - {"meta.json"}
        for relative in sorted(set(self.checksums) - present):
            raise ArtifactIntegrityError(f"{self.folder / relative} is missing from the artifact (meta.json lists it)")
        for relative in sorted(present - set(self.checksums)):
            raise ArtifactIntegrityError(f"{self.folder / relative}: a file the artifact's meta.json does not list; "
                                         "the artifact was altered after it was written")
        if not self.encrypted:
            for relative, expected in self.checksums.items():
                if _sha256_file(self.folder / relative) != expected:
                    raise ArtifactIntegrityError(
                        f"{self.folder / relative} does not match the SHA-256 recorded in meta.json (truncated or "
                        "altered); train the solution version again")


def _save_ids(path: Path, ids: np.ndarray) -> None:
    np.save(path, np.asarray([str(x) for x in ids], dtype=str), allow_pickle=False)


@dataclass
class TrainedModel:
    """A fitted recipe with the raw-id vocabularies it was trained on.

    Attributes
    ----------
    recipe : Recipe
        The fitted recipe (dense ids inside).
    users, items : Vocabulary
        Raw <-> dense ids of the training data.
    popularity : numpy.ndarray
        float32 per-item popularity used for fallbacks.
    meta : dict
        What was recorded at training time.
    """

    recipe: Recipe
    users: Vocabulary
    items: Vocabulary
    popularity: np.ndarray
    meta: dict[str, Any]

    @functools.cached_property
    def popular_order(self) -> np.ndarray:
        """Item indices by decreasing popularity (ties by index): the fallback ranking, sorted once."""
        return np.argsort(-self.popularity, kind="stable")

    @classmethod
    def from_fit(cls, recipe: Recipe, data: TrainingData | Interactions, meta: dict[str, Any]) -> TrainedModel:
        """Wrap a recipe fitted on ``data`` (its matrix gives the vocabularies and the fallback popularity)."""
        interactions = data.interactions if isinstance(data, TrainingData) else data
        positive = interactions.matrix.copy()
        positive.data = (positive.data > 0).astype(np.float32)
        popularity = np.asarray(positive.sum(axis=0)).ravel().astype(np.float32)
        return cls(recipe, interactions.user_vocab, interactions.item_vocab, popularity, dict(meta))

    def save(self, path: str | Path, *, encryption_key: bytes | str | SecretStr | None = None) -> Path:
        """Write the artifact to ``path`` atomically (a temp folder beside it, fsynced, then a rename), with the
        SHA-256 of every file in ``meta.json``.

        Parameters
        ----------
        path : str or Path
            The artifact folder.
        encryption_key : bytes or str, optional
            ``RECSMITH_ENCRYPTION_KEY`` (see :func:`artifact_key`): encrypt every file with AES-256-GCM.
        """
        key = artifact_key(encryption_key)
        target = Path(path)
        meta = {name: value for name, value in self.meta.items() if name not in BOOKKEEPING}

        def seal(tmp: Path) -> None:
            files = _files(tmp)
            checksums = {relative: _sha256_file(tmp / relative) for relative in files}
            (tmp / "meta.json").write_text(json.dumps(
                meta | {"checksums": checksums, "encryption": CIPHER if key else None}, indent=2, default=str))
            if key is not None:
                for relative in [*files, "meta.json"]:
                    _encrypt_file(tmp / relative, relative, key)

        with atomic_folder(target, seal=seal) as tmp:
            self.recipe.save(tmp / "model")
            _save_ids(tmp / "users.npy", self.users.ids)
            _save_ids(tmp / "items.npy", self.items.ids)
            np.save(tmp / "popularity.npy", self.popularity.astype(np.float32), allow_pickle=False)
        return target

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False,
             encryption_key: bytes | str | SecretStr | None = None) -> TrainedModel:
        """Read an artifact written by :meth:`save` (no pickle), checking every file's SHA-256.

        Parameters
        ----------
        path : str or Path
            The artifact folder.
        mmap : bool
            Memory-map the recipe's arrays (see :meth:`recsmith.recipes.Recipe.load`). An encrypted artifact is
            decrypted into memory instead, whatever ``mmap`` says.
        encryption_key : bytes or str, optional
            ``RECSMITH_ENCRYPTION_KEY``: needed for an encrypted artifact; an unencrypted one loads without it.

        Raises
        ------
        NotFoundError
            When the folder holds no artifact.
        ArtifactIntegrityError
            When a file is missing, truncated or altered (the message names it).
        ArtifactKeyError
            When the artifact is encrypted and no key, or another key, is given.
        DataError
            When the artifact is otherwise damaged or incomplete.
        """
        folder = Path(path)
        if not (folder / "meta.json").is_file():
            raise NotFoundError(f"no trained model at {folder} (meta.json missing); was the training finished?")
        key = artifact_key(encryption_key)
        try:
            reader = _ArtifactReader(folder, key)
            meta = json.loads(reader(folder / "meta.json"))
            checksums = meta.pop("checksums", None)
            meta.pop("encryption", None)
            if checksums is None:
                logger.info("the model artifact at %s has no checksums (written before recsmith recorded them): "
                            "loaded without checking its files", folder)
            else:
                reader.checksums = dict(checksums)
                reader.verify_files()
            if key is not None and not reader.encrypted:
                logger.warning("the model artifact at %s is not encrypted (written without %s); train it again to "
                               "encrypt it", folder, KEY_SETTING)
            read = reader if reader.encrypted else None

            def array(name: str) -> np.ndarray:
                return np.load(io.BytesIO(reader(folder / name)) if read else folder / name, allow_pickle=False)

            recipe = load_recipe(folder / "model", mmap=mmap and read is None, read=read)
            users = Vocabulary(array("users.npy").tolist())
            items = Vocabulary(array("items.npy").tolist())
            popularity = array("popularity.npy")
        except (ArtifactIntegrityError, ArtifactKeyError):
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"the model artifact at {folder} is damaged or incomplete: {exc}") from exc
        return cls(recipe, users, items, popularity, meta)


def remove_artifact(path: str | Path) -> bool:
    """Delete an artifact folder written by :meth:`TrainedModel.save`; returns whether one was deleted.

    Only a folder holding an artifact's ``meta.json`` is deleted (a path from the store that names anything
    else is left, with a warning); one already gone is not an error. Processes that memory-mapped its arrays
    keep their pages until they let go of them.
    """
    folder = Path(path)
    if not folder.exists():
        return False
    if not folder.is_dir() or not (folder / "meta.json").is_file():
        logger.warning("%s is not an artifact folder (no meta.json); not deleted", folder)
        return False
    shutil.rmtree(folder)
    return True
