"""Single-heartbeat classifiers: Kachuee's residual CNN, two bidirectional RNNs, and an attention seq2seq.

A beat here is what Kachuee et al. cut from MIT-BIH: 187 samples at 125 Hz.

- ``cnet``: the residual CNN of Kachuee, Fazeli & Sarrafzadeh, "ECG Heartbeat Classification: A Deep
  Transferable Representation", ICHI 2018. With one lead, five classes and 187 samples it has 55,013
  parameters.
- ``bilstm`` / ``bigru``: a bidirectional LSTM or GRU reading the beat sample by sample (or frame by
  frame), summarised by the last layer's final states of both directions.
- ``seq2seq``: after Mousavi & Afghah, "Inter- and Intra-Patient ECG Heartbeat Classification for
  Arrhythmia Detection: A Sequence to Sequence Deep Learning Approach", ICASSP 2019: a convolutional +
  bidirectional-LSTM encoder and an LSTM decoder with dot-product attention.

Every model ends in the same two fully connected layers, ``head = (Linear, ReLU, Linear)``: Kachuee's
transfer learning swaps exactly these for a new task and may freeze the rest (``feature_parameters``).
Forward passes avoid data-dependent Python branches so that ``torch.export`` can trace them.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgtune.models._registry import register_model, signal_shape
from ecgtune.models.head import HeadedModel


def classifier_head(fc_units: int, num_outputs: int) -> nn.Sequential:
    """The last two fully connected layers, the part transfer learning replaces."""
    return nn.Sequential(
        nn.Linear(fc_units, fc_units), nn.ReLU(), nn.Linear(fc_units, num_outputs)
    )


# ---------------------------------------------------------------------------------------------- cnet


class KachueeBlock(nn.Module):
    """conv -> ReLU -> conv, plus the block input, -> ReLU -> max-pool (kernel 5, stride 2)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        # Zero "same" padding, as Keras' padding="same" in the paper's implementation.
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.pool = nn.MaxPool1d(kernel_size=5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return self.pool(torch.relu(out + x))


def pooled_length(input_length: int, num_blocks: int) -> int:
    """Samples left after ``num_blocks`` max-pools of kernel 5, stride 2 (0 or less: too short)."""
    length = input_length
    for _ in range(num_blocks):
        length = (length - 5) // 2 + 1
    return length


@register_model("cnet")
class CNet(HeadedModel):
    """Kachuee et al.'s residual CNN: a stem convolution, ``num_blocks`` residual blocks, a dense layer,
    and the two-layer head. The defaults are the paper's."""

    def __init__(
        self, *, inputs, num_outputs, filters=32, kernel_size=5, num_blocks=5, fc_units=32,
        dropout=0.0,
    ):
        super().__init__()
        in_channels, input_length = signal_shape(inputs)
        if kernel_size % 2 == 0:
            # An even kernel with padding k // 2 grows the sequence and breaks the residual addition.
            raise ValueError(f"kernel_size={kernel_size} must be odd to keep the residual blocks' length")
        length = pooled_length(input_length, num_blocks)
        if length < 1:
            raise ValueError(
                f"input_length={input_length} is too short for num_blocks={num_blocks} max-pools "
                f"(kernel 5, stride 2)"
            )
        self.stem = nn.Conv1d(in_channels, filters, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.Sequential(*(KachueeBlock(filters, kernel_size) for _ in range(num_blocks)))
        self.dense = nn.Linear(filters * length, fc_units)
        self.dropout = nn.Dropout(dropout)
        self.head = classifier_head(fc_units, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> logits (batch, 1) for binary, (batch, classes) otherwise."""
        features = self.blocks(self.stem(x)).flatten(1)
        return self.head(self.dropout(torch.relu(self.dense(features))))


# ----------------------------------------------------------------------------------- bilstm / bigru


def frames(x: torch.Tensor, frame_size: int) -> torch.Tensor:
    """(batch, channels, samples) -> (batch, samples // frame_size, channels * frame_size).

    Trailing samples that do not fill a frame are dropped. A larger frame shortens the sequence the RNN
    has to step through, which is what makes training affordable on a CPU.
    """
    batch, channels, samples = x.shape
    steps = samples // frame_size
    x = x[:, :, : steps * frame_size].reshape(batch, channels, steps, frame_size)
    return x.permute(0, 2, 1, 3).reshape(batch, steps, channels * frame_size)


class BiRNNClassifier(HeadedModel):
    """A bidirectional recurrent network over frames of the beat; subclasses name the ``cell``."""

    cell: type[nn.Module]

    def __init__(
        self, *, inputs, num_outputs, hidden=64, num_layers=1, frame_size=1, fc_units=32,
        dropout=0.0,
    ):
        super().__init__()
        in_channels, input_length = signal_shape(inputs)
        if not 1 <= frame_size <= input_length:
            raise ValueError(f"frame_size={frame_size} must be between 1 and input_length={input_length}")
        self.frame_size = frame_size
        self.rnn = self.cell(
            input_size=in_channels * frame_size,
            hidden_size=hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,  # PyTorch warns on dropout with a single layer
        )
        self.dense = nn.Linear(2 * hidden, fc_units)
        self.dropout = nn.Dropout(dropout)
        self.head = classifier_head(fc_units, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> logits (batch, 1) for binary, (batch, classes) otherwise."""
        _, state = self.rnn(frames(x, self.frame_size))
        final_hidden = state[0] if isinstance(state, tuple) else state  # LSTM also returns its cell state
        # The last two rows are the last layer's forward and backward directions.
        summary = torch.cat([final_hidden[-2], final_hidden[-1]], dim=1)
        return self.head(self.dropout(torch.relu(self.dense(summary))))


@register_model("bilstm")
class BiLSTMClassifier(BiRNNClassifier):
    """Bidirectional LSTM over the beat."""

    cell = nn.LSTM


@register_model("bigru")
class BiGRUClassifier(BiRNNClassifier):
    """Bidirectional GRU over the beat."""

    cell = nn.GRU


# ------------------------------------------------------------------------------------------ seq2seq


@register_model("seq2seq")
class Seq2SeqClassifier(HeadedModel):
    """Mousavi & Afghah's attention seq2seq, reduced to one label per beat: a conv + BiLSTM encoder, and
    an LSTM decoder attending over its outputs for a fixed number of steps."""

    def __init__(
        self, *, inputs, num_outputs, conv_filters=32, hidden=64, decoder_steps=3,
        fc_units=32, dropout=0.0,
    ):
        super().__init__()
        in_channels, input_length = signal_shape(inputs)
        if input_length // 2 // 2 < 1:
            raise ValueError(f"input_length={input_length} is too short for the encoder's two max-pools of 2")
        if decoder_steps < 1:
            raise ValueError(f"decoder_steps={decoder_steps} must be at least 1")
        self.decoder_steps = decoder_steps
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, conv_filters, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(conv_filters, conv_filters, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
        )
        self.encoder = nn.LSTM(conv_filters, hidden, batch_first=True, bidirectional=True)
        # The decoder starts from the encoder's two directions side by side, so its state is 2 * hidden
        # wide; so is its input, the previous step's context (a weighted sum of encoder outputs).
        self.decoder = nn.LSTMCell(2 * hidden, 2 * hidden)
        self.dense = nn.Linear(4 * hidden, fc_units)
        self.dropout = nn.Dropout(dropout)
        self.head = classifier_head(fc_units, num_outputs)

    @staticmethod
    def attend(state: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        """Dot-product attention: (batch, d) over (batch, time, d) -> context (batch, d)."""
        weights = torch.softmax(torch.bmm(encoded, state.unsqueeze(2)).squeeze(2), dim=1)
        return torch.bmm(weights.unsqueeze(1), encoded).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> logits (batch, 1) for binary, (batch, classes) otherwise."""
        encoded, (h_n, c_n) = self.encoder(self.conv(x).transpose(1, 2))
        hidden = torch.cat([h_n[0], h_n[1]], dim=1)
        cell = torch.cat([c_n[0], c_n[1]], dim=1)
        context = torch.zeros_like(hidden)
        for _ in range(self.decoder_steps):  # a fixed count, unrolled by torch.export
            hidden, cell = self.decoder(context, (hidden, cell))
            context = self.attend(hidden, encoded)
        summary = torch.cat([hidden, context], dim=1)
        return self.head(self.dropout(torch.relu(self.dense(summary))))
