"""Bulk lookups' compiled pass: find many keys' newest rows and gather their values at once.

A 500-key lookup touches a few scattered cache lines per key in the key index and one per
column in the blocks. Done as a dozen numpy calls (hash, search, confirm, one ``take`` per
block, an Arrow cast for the ids), each call paid its own cold start and the lines were
fetched call by call; here each pass over the keys issues its loads independently, so the
CPU overlaps the misses. Imported only by bulk lookups (``Index.find_gathered``), so that a
process answering single lookups never loads numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def find_gather_nb(codes, mult, final, starts, shift, sorted_hash, sorted_rows, code_block,
                   times, floats, bids, exact):
    """(confirmed, rows, codes, times, floats, bids, id offsets, id text) of the keys found.

    ``codes``: (keys, 4) key codes; ``mult``/``final``: the key hash's constants (see
    ``_index.key_hash_rows``); ``starts``/``shift``: the key index's bucket table. A key's
    newest version is the last entry of its hash in its bucket. Unless ``exact``, that entry's
    codes are checked after the gather, from the gathered codes (no extra cache misses), and
    ``confirmed`` is False when one differs: a hash collision, for the caller to redo with
    ``exact``, which checks each equal hash's codes while searching and never fails. Rows and
    gathered columns follow the found keys' input order; ids become decimal text (offsets
    and bytes of an Arrow string array; ids are non-negative).
    """
    k = codes.shape[0]
    hashes = np.empty(k, np.uint64)
    lo = np.empty(k, np.int64)
    hi = np.empty(k, np.int64)
    for i in range(k):  # hashes and bucket bounds: independent loads, overlapped
        h = np.uint64(0)
        for c in range(4):
            h ^= np.uint64(codes[i, c]) * mult[c]
        h ^= h >> np.uint64(31)
        h *= final
        h ^= h >> np.uint64(29)
        hashes[i] = h
        bucket = np.int64(h >> np.uint64(shift))
        lo[i] = starts[bucket]
        hi[i] = starts[bucket + 1]
    rows = np.empty(k, np.int64)
    found = np.empty(k, np.int64)  # each found row's key
    m = 0
    for i in range(k):
        for j in range(hi[i] - 1, lo[i] - 1, -1):  # equal hashes sit oldest first
            if sorted_hash[j] == hashes[i] and (not exact or _same_codes(
                    code_block, sorted_rows[j], codes, i)):
                rows[m] = sorted_rows[j]
                found[m] = i
                m += 1
                break
    rows = rows[:m]
    out_codes = _gather(code_block, rows)
    confirmed = True
    for j in range(m):
        confirmed &= _same_codes(out_codes, j, codes, found[j])
    out_bids = np.empty(m, np.int64)
    for j in range(m):
        out_bids[j] = bids[rows[j]]
    offsets, text = _decimal_text(out_bids)
    return (confirmed, rows, out_codes, _gather(times, rows), _gather(floats, rows), out_bids,
            offsets, text)


@njit(cache=True, nogil=True)
def _same_codes(block, column, codes, i):
    return (block[0, column] == codes[i, 0] and block[1, column] == codes[i, 1]
            and block[2, column] == codes[i, 2] and block[3, column] == codes[i, 3])


@njit(cache=True, nogil=True)
def _gather(block, rows):
    """``block[:, rows]`` as a new (columns, rows) block, column by column (a column's loads
    are independent, so they overlap)."""
    out = np.empty((block.shape[0], rows.shape[0]), block.dtype)
    for c in range(block.shape[0]):
        for j in range(rows.shape[0]):
            out[c, j] = block[c, rows[j]]
    return out


@njit(cache=True, nogil=True)
def _decimal_text(values):
    """(offsets, bytes) of the decimal text of non-negative integers, one after another."""
    offsets = np.empty(values.shape[0] + 1, np.int64)
    text = np.empty(values.shape[0] * 19, np.uint8)  # int64 has at most 19 digits
    offsets[0] = 0
    end = 0
    for j in range(values.shape[0]):
        value = values[j]
        digits = 1
        rest = value // 10
        while rest:
            rest //= 10
            digits += 1
        end += digits
        for d in range(digits):
            text[end - 1 - d] = 48 + value % 10
            value //= 10
        offsets[j + 1] = end
    return offsets, text[:end]


@njit(cache=True, nogil=True)
def table_insert_nb(table, words, codes):
    """Insert ``words`` (distinct, not yet in ``table``) with their ``codes`` into an open
    addressing table: rows of (word, code), code -1 where a slot is empty, linear probing
    from the word's low bits (the words are digests: their bits are uniform)."""
    mask = table.shape[0] - 1
    for i in range(words.shape[0]):
        slot = words[i] & mask
        while table[slot, 1] != -1:
            slot = (slot + 1) & mask
        table[slot, 0] = words[i]
        table[slot, 1] = codes[i]


@njit(cache=True, nogil=True)
def table_codes_nb(table, words):
    """The code of each word in a ``table_insert_nb`` table, -1 where absent."""
    mask = table.shape[0] - 1
    out = np.full(words.shape[0], -1, np.int64)
    for i in range(words.shape[0]):
        slot = words[i] & mask
        while table[slot, 1] != -1:
            if table[slot, 0] == words[i]:
                out[i] = table[slot, 1]
                break
            slot = (slot + 1) & mask
    return out
