"""The zoo's errors. Every one names the file, URL or entry it is about; the CLI maps them to exit
codes (``routellm_jax.cli._KNOWN_ERRORS``): the user's to fix (an unknown entry, a malformed or
hostile manifest, an entry published nowhere) or not (a failed download, an altered file).
"""

from __future__ import annotations


class ZooError(Exception):
    """Base class of zoo errors."""


class EntryNotFound(ZooError, KeyError):
    """A name (or name@version) that the manifest does not list."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IntegrityError(ZooError, ValueError):
    """A file whose size or sha256 differs from what the manifest or card says."""


class DownloadError(ZooError, OSError):
    """Every URL of a file failed; the message lists each URL and why."""


class ManifestError(ZooError, ValueError):
    """A malformed manifest; the message names the file and the key."""


class NotPublished(ZooError):
    """An entry listed without any URL: its ``build`` text says how to build it locally."""


class UnsafePath(ZooError, ValueError):
    """A path the zoo would write, rename or delete resolves outside the zoo cache."""
