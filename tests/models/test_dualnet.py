"""ECG-DualNet and DualNet++: the seed's sizes, the Padé activation unit, and a two-input champion that
loads and classifies without ecgtune."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ecgtune.models import create_model
from ecgtune.models.dualnet import LEAKY_RELU_DENOMINATOR, LEAKY_RELU_NUMERATOR, PAU

SEED_INPUTS = {"windows": (80, 256), "spectrogram": (1, 563, 33)}


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size,published", [("s", 1_840_210), ("m", 4_269_618), ("l", 6_176_498), ("xl", 20_683_122)])
def test_dualnet_sizes_have_the_published_parameter_counts(size, published):
    assert count(create_model("dualnet", inputs=SEED_INPUTS, num_outputs=4, size=size)) == published


@pytest.mark.parametrize("size,published", [("s", 1_785_186), ("m", 2_589_714)])
def test_dualnet_pp_sizes_are_the_published_ones_plus_the_learned_positions(size, published):
    """The seed's README counts for DualNet++ leave out its learned positional embedding (80 x 256), a
    parameter of its model all the same; everything else matches."""
    model = create_model("dualnet_pp", inputs=SEED_INPUTS, num_outputs=4, size=size)
    assert count(model) == published + 80 * 256 and model.positions.numel() == 80 * 256


def test_axial_attention_spans_follow_the_spectrograms_size():
    model = create_model("dualnet_pp", inputs=SEED_INPUTS, num_outputs=4, size="xs")
    spans = [(b.attention[0].span, b.attention[1].span) for b in model.blocks[2:]]
    assert spans == [(140, 8), (70, 4), (35, 2)]  # the seed's, for 563 x 33 frames


def test_pau_is_the_safe_rational_function_and_starts_near_a_leaky_relu():
    x = torch.linspace(-3, 3, 61)
    a, b = np.array(LEAKY_RELU_NUMERATOR), np.array(LEAKY_RELU_DENOMINATOR)
    xs = x.double().numpy()
    expected = sum(a[i] * xs**i for i in range(6)) / (1 + sum(abs(b[j - 1]) * np.abs(xs) ** j for j in range(1, 5)))
    np.testing.assert_allclose(PAU()(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    leaky = np.where(xs > 0, xs, 0.01 * xs)
    assert np.abs(PAU()(x).detach().numpy() - leaky).max() < 0.1
    pau = PAU()
    pau(torch.randn(8)).sum().backward()
    assert pau.numerator.grad is not None and pau.denominator.grad is not None


def test_a_two_input_champion_loads_and_classifies_without_ecgtune(tmp_path):
    """The registry's program takes the windows and the spectrogram positionally; a Python that cannot
    import ecgtune loads and runs it."""
    from ecgtune.tuning import promotion, tracking

    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = tracking.client(uri)
    exp = tracking.experiment_id(client, "dualnet-export")
    run = client.create_run(exp)
    shapes = {"windows": (12, 256), "spectrogram": (1, 84, 33)}
    model = create_model("dualnet", inputs=shapes, num_outputs=4, size="xs", activation="pau").eval()
    example = {name: np.random.default_rng(0).standard_normal((2, *s)).astype(np.float32) for name, s in shapes.items()}
    promotion.promote(client, name="ecgtune-test-dualnet", run_id=run.info.run_id, model=model, example=example,
                      metric="val_cinc_f1", value=0.5, mode="max", tags={})
    batch = {name: torch.from_numpy(np.random.default_rng(1).standard_normal((3, *s)).astype(np.float32))
             for name, s in shapes.items()}
    with torch.no_grad():
        expected = model(*batch.values()).numpy()
    np.save(tmp_path / "windows.npy", batch["windows"].numpy())
    np.save(tmp_path / "spectrogram.npy", batch["spectrogram"].numpy())
    script = f"""
import sys
sys.modules["ecgtune"] = None  # as on a machine without it: any import of ecgtune fails
import numpy as np, torch, mlflow, mlflow.pytorch
mlflow.set_tracking_uri({uri!r}); mlflow.set_registry_uri({uri!r})
model = mlflow.pytorch.load_model("models:/ecgtune-test-dualnet@champion")
windows = torch.from_numpy(np.load({str(tmp_path / 'windows.npy')!r}))
spectrogram = torch.from_numpy(np.load({str(tmp_path / 'spectrogram.npy')!r}))
np.save({str(tmp_path / 'out.npy')!r}, model(windows, spectrogram).detach().numpy())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-5)
