"""Downloading files of a PhysioNet release, each verified against the release's own checksum list.

PhysioNet publishes `SHA256SUMS.txt` ("<sha256> <relative path>" lines) in every release folder. It is the
root of trust: fetched over HTTPS, kept in memory only (a copy written beside the data could go stale
when the base URL points at another release), and a file it does not name is never downloaded
unverified.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

from ecgtune.data import cache, progress
from ecgtune.errors import EcgtuneError

CHECKSUM_LIST = "SHA256SUMS.txt"
FETCH_TIMEOUT = 60.0  # seconds per read from the server


def failure_reason(err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    return str(getattr(err, "reason", None) or err) or type(err).__name__


class PhysioNetRelease:
    """Args:
        title: How errors name the dataset ("PTB-XL").
        folder: Where its files go (`<data root>/<dataset>`).
        base_url: The release folder (PhysioNet's; a local server in tests).
        hint: What errors tell the user to do instead (use a local copy).
    """

    def __init__(self, title: str, folder: Path, base_url: str, hint: str):
        self.title, self.folder, self.hint = title, folder, hint
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._checksums: dict[str, str] | None = None  # the published list, fetched once when needed

    def missing(self, relative_paths: list[str]) -> list[str]:
        return [p for p in relative_paths if not (self.folder / p).is_file()]

    def download_missing(self, relative_paths: list[str], lock: str) -> None:
        """Fetch those of ``relative_paths`` that are not in the folder, each verified; present files are
        left alone (not even re-hashed)."""
        if not self.missing(relative_paths):
            return
        with cache.file_lock(lock):
            missing = self.missing(relative_paths)  # again: another process may have fetched some
            if not missing:
                return
            checksums = self.published_checksums(missing)
            # Check the whole batch first, so that a refused file does not leave half a download.
            unlisted = [p for p in missing if p not in checksums]
            if unlisted:
                shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if len(unlisted) > 5 else "")
                raise EcgtuneError(
                    f"{self.title}: missing from {self.folder} but not in the checksum list "
                    f"{self.base_url}{CHECKSUM_LIST}: {shown}; a file without a published SHA-256 is not "
                    "downloaded unverified"
                )
            for relative in progress.steps(missing, what=f"{self.title}: downloading", unit="file"):
                self.fetch(relative, checksums[relative])

    def published_checksums(self, missing: list[str]) -> dict[str, str]:
        """{relative path: hex SHA-256} from the release's SHA256SUMS.txt."""
        if self._checksums is None:
            url = self.base_url + CHECKSUM_LIST
            try:
                with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:
                    text = response.read().decode("utf-8")
            except (urllib.error.URLError, http.client.HTTPException, OSError, UnicodeDecodeError) as err:
                more = f" (and {len(missing) - 1} more files)" if len(missing) > 1 else ""
                raise EcgtuneError(
                    f"{self.title}: {missing[0]}{more} is not in {self.folder}, and the checksum list {url} that "
                    f"downloads are verified against cannot be fetched ({failure_reason(err)}). {self.hint}"
                ) from err
            self._checksums = cache.parse_checksums(text, source=url)
        return self._checksums

    def fetch(self, relative: str, expected_sha256: str) -> None:
        url = self.base_url + relative
        try:
            cache.download_verified(url, self.folder / relative, expected_sha256, timeout=FETCH_TIMEOUT)
        except cache.DownloadError as err:
            raise EcgtuneError(
                f"{self.title}: {relative} is not in {self.folder} and downloading it from {url} failed "
                f"({err.reason}). {self.hint}"
            ) from err
