"""A fingerprint of the data a run trains on: each file's size and a hash of its content.

A run writes it at its start; resume recomputes it and refuses a data folder whose files kept their names but
changed their content (a renamed, re-encoded or replaced image). The hash is BLAKE2b (16 bytes) of the whole
file, read in parallel threads (hashlib releases the GIL); mtimes are left out, so copying or touching the
files does not count as a change. Cost, measured by `benchmarks/fingerprint.py`: see docs/results.md.
"""

import concurrent.futures
import hashlib
import os

CHUNK = 1 << 20


def file_fingerprint(path):
    """`"<size>:<blake2b-16 hex>"` of one file."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return f"{size}:{digest.hexdigest()}"


def fingerprint(paths, workers=8):
    """`{path: "<size>:<hash>"}` of `paths` (a file that cannot be read gets `"missing"`)."""

    def one(path):
        try:
            return file_fingerprint(path)
        except OSError:
            return "missing"

    paths = [os.fspath(p) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(paths, pool.map(one, paths)))


def changed_files(stored, current):
    """The paths whose fingerprint differs (or that are in one of the two only), sorted."""
    return sorted(p for p in set(stored) | set(current) if stored.get(p) != current.get(p))


def text_fingerprint(texts):
    """`{text id: "<characters>:<blake2b-16 hex>"}` of `{id: text}` (a text run's rows): a text changed under the
    same id (an edited table row) is what resume and evaluation refuse, as they refuse a changed image file."""
    def one(text):
        return f"{len(text)}:{hashlib.blake2b(text.encode('utf-8', 'surrogateescape'), digest_size=16).hexdigest()}"
    return {text_id: one(text) for text_id, text in texts.items()}
