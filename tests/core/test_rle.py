import numpy as np

from core.rle import decode_rle, encode_rle


def test_rle_round_trip_keeps_every_pixel():
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    rle = encode_rle(mask)
    assert rle["size"] == [17, 23] and isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask)
