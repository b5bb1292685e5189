"""The segment writer lays out shard files that zarr itself reads back bit for bit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from core.errors import StoreCorruptionError
from core.store import _segment

CHUNK_KEYS = {"name": "default", "separator": "."}  # the store's: shard files beside zarr.json


def written(tmp_path, field: str, values: np.ndarray, level: int = 4) -> zarr.Array:
    """``values`` written as segment array ``field`` by the store's writer, opened with zarr."""
    store = LocalStore(tmp_path)
    _segment._put_files(store, _segment._array_files(f"seg/{field}", field, values, level))
    return zarr.open_array(store=store, path=f"seg/{field}", mode="r",
                           config=_segment.READ_CONFIG)


@pytest.mark.parametrize("field, values", [
    # per-row block: 2 row chunks (65,536 rows each, the second one padded) x 3 columns
    ("floats", np.random.default_rng(0).normal(size=(70_000, 3))),
    ("codes", np.arange(30, dtype=np.int32).reshape(10, 3)),
    ("times", np.array([[0, 1, np.iinfo(np.int64).max]], np.int64)),
    # ragged values: 2 shard files (2,048 chunks of 2,048 values each), last chunk padded
    ("eq_values", np.random.default_rng(1).normal(size=8_192 * 600 + 17)),
    ("tr_ints", np.arange(40, dtype=np.int32).reshape(20, 2)),
])
def test_zarr_reads_back_every_value(tmp_path, field, values):
    array = written(tmp_path, field, values)
    assert array.shape == values.shape and array.dtype == values.dtype
    assert np.array_equal(array[...], values)


def test_nan_and_signed_zero_round_trip_bit_for_bit(tmp_path):
    values = np.array([[np.nan, -0.0, np.inf], [1e-300, -np.inf, 0.1 + 0.2]])
    back = written(tmp_path, "floats", values)[...]
    assert back.tobytes() == values.tobytes()


def test_one_chunk_arrays_are_byte_identical_to_zarrs_own_writer(tmp_path):
    values = np.random.default_rng(2).normal(size=8_192 * 3 + 5)
    written(tmp_path / "mine", "eq_values", values)
    inner, shard = _segment.chunk_layout("eq_values", values.shape, 4)
    with _segment.fused_pipeline():
        theirs = zarr.create_array(
            store=LocalStore(tmp_path / "theirs"), name="seg/eq_values", shape=values.shape,
            dtype=values.dtype, chunks=inner, shards=shard,
            serializer=zarr.codecs.PCodec(level=4), compressors=[zarr.codecs.Crc32cCodec()],
            fill_value=0, config={"write_empty_chunks": True}, zarr_format=3,
            chunk_key_encoding=CHUNK_KEYS)
        theirs[...] = values
    for key in ("zarr.json", "c.0"):
        mine = (tmp_path / "mine" / "seg" / "eq_values" / key).read_bytes()
        assert mine == (tmp_path / "theirs" / "seg" / "eq_values" / key).read_bytes(), key


@pytest.mark.parametrize("field, shape, dtype", [
    ("floats", (10_000, 18), np.float64), ("codes", (7, 8), np.int32),
    ("times", (70_000, 3), np.int64),
    ("tr_ints", (33_914, 2), np.int32), ("eq_steps", (457_050,), np.int64),
    ("eq_values", (5,), np.float64)])
@pytest.mark.parametrize("level", [0, 4, 8])
def test_metadata_documents_are_the_ones_zarr_creates(tmp_path, field, shape, dtype, level):
    _, document = _segment._array_template(field, shape, np.dtype(dtype), level)
    assert document == zarr_document(tmp_path / "a", field, shape, dtype, level)
    shorter = (shape[0] - 1, *shape[1:])  # a cached layout given another batch's shape
    if shape[0] > 1 and (_segment.chunk_layout(field, shorter, level)
                         == _segment.chunk_layout(field, shape, level)):
        _, document = _segment._array_template(field, shorter, np.dtype(dtype), level)
        assert document == zarr_document(tmp_path / "b", field, shorter, dtype, level)


def zarr_document(folder, field: str, shape: tuple, dtype, level: int) -> bytes:
    """The zarr.json zarr's own create_array writes for a segment array's layout."""
    inner, shard = _segment.chunk_layout(field, shape, level)
    zarr.create_array(store=LocalStore(folder), name="a", shape=shape, dtype=dtype,
                      chunks=inner, shards=shard,
                      serializer=zarr.codecs.PCodec(**_segment.pcodec_settings(level)),
                      compressors=[zarr.codecs.Crc32cCodec()], fill_value=0,
                      config={"write_empty_chunks": True}, zarr_format=3,
                      chunk_key_encoding=CHUNK_KEYS)
    return (folder / "a" / "zarr.json").read_bytes()


def test_the_vocabulary_array_is_zarrs_own_layout(tmp_path):
    values = _segment.encode_vocab({"symbol": ["AAPL", "Ü"], "params": [("{}", "ab" * 8)]})
    _segment._put_files(LocalStore(tmp_path), _segment._vocab_files("v", values))
    zarr.create_array(store=LocalStore(tmp_path), name="theirs", shape=values.shape,
                      dtype=np.uint8, chunks=values.shape, serializer=zarr.codecs.BytesCodec(),
                      compressors=[zarr.codecs.ZstdCodec(level=_segment.VOCAB_LEVEL),
                                   zarr.codecs.Crc32cCodec()], fill_value=0, zarr_format=3,
                      chunk_key_encoding=CHUNK_KEYS)
    assert (tmp_path / "v" / "zarr.json").read_bytes() == \
        (tmp_path / "theirs" / "zarr.json").read_bytes()
    back = zarr.open_array(store=LocalStore(tmp_path), path="v", mode="r")[...]
    assert json.loads(back.tobytes()) == {"symbol": ["AAPL", "Ü"], "params": [["{}", "ab" * 8]]}


def test_every_chunk_carries_a_checksum(tmp_path):
    values = np.arange(100, dtype=np.float64).reshape(50, 2)
    written(tmp_path, "floats", values)
    shard = tmp_path / "seg" / "floats" / "c.0.0"
    raw = bytearray(shard.read_bytes())
    raw[3] ^= 0xFF  # a byte inside the first inner chunk
    shard.write_bytes(bytes(raw))
    reader = _segment.SegmentReader(name="seg", attrs={"rows": 50, "arrays": {
        "floats": [50, 2]}}, zstore=LocalStore(tmp_path), opened={})
    reader.opened["floats"] = zarr.open_array(
        store=LocalStore(tmp_path), path="seg/floats", mode="r").async_array
    with pytest.raises(StoreCorruptionError):
        reader.read("floats")
