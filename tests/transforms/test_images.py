"""Seed 000's image encodings on small hand-checkable leads: each formula computed here independently,
the resize, the uint8 scale and the channel order of a record's image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.transforms.images import channel_names, gaf, mtf, record_image, resize, rp

LEAD = np.array([0.0, 1.2, 3.1, 2.3, 5.0, 4.1, 4.6, 0.7])  # no sample on a bin edge but the extremes


def _scaled(lead):
    return (lead - lead.min()) / (lead.max() - lead.min())


def test_gaf_is_the_cosine_of_summed_angles_rescaled_to_0_1():
    phi = np.arccos(2 * _scaled(LEAD) - 1)  # pyts rescales the lead to [-1, 1] first
    expected = (np.cos(phi[:, None] + phi[None, :]) + 1) / 2
    np.testing.assert_allclose(gaf(LEAD), expected, atol=1e-6)


def test_mtf_is_the_row_normalised_transition_count_between_uniform_bins_over_5():
    x = _scaled(LEAD)
    bins = np.minimum((x * 10).astype(int), 9)  # ten bins of equal width over the lead's range
    counts = np.zeros((10, 10))
    for a, b in zip(bins[:-1], bins[1:]):
        counts[a, b] += 1
    rows = counts.sum(1, keepdims=True)
    probabilities = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    expected = probabilities[bins[:, None], bins[None, :]] / 5
    np.testing.assert_allclose(mtf(LEAD), expected, atol=1e-6)
    assert mtf(LEAD).max() <= 0.2


def test_rp_is_the_distance_between_scaled_samples():
    x = _scaled(LEAD)
    np.testing.assert_allclose(rp(LEAD), np.abs(x[:, None] - x[None, :]), atol=1e-6)


def test_a_flat_lead_gives_zeros_not_nan():
    flat = np.full(8, 3.0)
    for encode in (gaf, mtf, rp):
        assert np.array_equal(encode(flat), np.zeros((8, 8)))


def test_resize_is_bilinear_with_half_pixel_centres():
    image = np.array([[0.0, 1.0], [2.0, 3.0]])
    out = resize(image, 4)
    # align_corners=False: output pixel 0 samples input coordinate -0.25, clamped to the edge.
    assert out[0, 0] == pytest.approx(0.0) and out[0, 1] == pytest.approx(0.25) and out[1, 1] == pytest.approx(0.75)
    big = np.random.default_rng(0).random((40, 40))
    expected = torch.nn.functional.interpolate(torch.tensor(big, dtype=torch.float32)[None, None], size=(16, 16),
                                               mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(resize(big, 16), expected, atol=1e-6)


def test_record_image_is_lead_major_uint8():
    t = np.linspace(0, 1, 50)
    signal = np.stack([np.sin(2 * np.pi * 2 * t), t ** 2])  # two leads that differ
    image = record_image(signal, size=10)
    assert image.dtype == np.uint8 and image.shape == (6, 10, 10)
    for channel, name in enumerate(channel_names(["I", "II"])):
        lead, kind = name.split("-")
        encode = {"gaf": gaf, "mtf": mtf, "rp": rp}[kind]
        expected = np.clip(np.rint(resize(encode(signal[0 if lead == "I" else 1]), 10) * 255), 0, 255)
        np.testing.assert_array_equal(image[channel], expected.astype(np.uint8))
    assert channel_names(["I", "II"])[:4] == ["I-gaf", "I-mtf", "I-rp", "II-gaf"]
    assert record_image(signal, kinds=("rp",), size=10).shape == (2, 10, 10)


def test_unknown_kinds_and_sizes_are_refused():
    with pytest.raises(EcgtuneError, match="unknown image kind 'spectrogram'; known: gaf, mtf, rp"):
        record_image(np.zeros((1, 10)), kinds=("gaf", "spectrogram"))
    with pytest.raises(EcgtuneError, match="positive integer"):
        record_image(np.zeros((1, 10)), size=0)
