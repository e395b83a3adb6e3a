"""The data converter every client and worker uses: pydantic payloads, encrypted by the
envelope codec, with failure messages and stack traces encoded into payloads too (so an
exception that quotes an address is as unreadable in the history as the address itself)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from nurture.privacy.codec import EnvelopeCodec
from nurture.privacy.key_store import KeyStore
from nurture.privacy.master_keys import MasterKeys
from nurture.store.db import data_dir_from_env, database_url_from_env, make_engine


def encrypted_converter(store: KeyStore) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EnvelopeCodec(store),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


KEYS_DATABASE_ENV = "NURTURE_KEYS_DATABASE_URL"


def keys_database_url(data_dir: Path | None = None) -> str:
    """Where the data keys are kept: ``NURTURE_KEYS_DATABASE_URL``, else our database
    (``NURTURE_DATABASE_URL`` or the data dir's SQLite). A database of their own means a copy
    of the read model never carries the keys to the histories."""
    return os.environ.get(KEYS_DATABASE_ENV) or database_url_from_env(data_dir)


def key_store_from_env(data_dir: Path | None = None) -> KeyStore:
    """The key store (:func:`keys_database_url`) with the master keys from the environment
    (see :mod:`nurture.privacy.master_keys`)."""
    directory = data_dir or data_dir_from_env()
    return KeyStore(make_engine(keys_database_url(directory)), MasterKeys.from_env(directory))
