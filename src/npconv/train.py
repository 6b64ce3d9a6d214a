"""Training demo: a small CNN of depthwise-separable blocks learns scikit-learn's 8x8 digits.

:func:`train_digits` (``npconv train digits``) splits the 1797 bundled images 80/20 with a
fixed seed, trains with Adam on mini-batches, shows a progress bar on stderr, prints one line
per epoch (loss, train and test accuracy) and a final ``test accuracy: 0.xxxx``, and saves the
weights to an ``.npz`` file (reload with ``digits_model().load_state_dict(npconv.nn.load(path))``).
scikit-learn is needed for the data only: ``pip install 'npconv[train]'``.
"""

import collections
import math
import sys
import time

import numpy as np

from . import nn
from .nn.activation import ReLU
from .nn.conv import Conv2d, DepthwiseSeparableConv2d
from .nn.linear import Flatten, Linear
from .nn.normalization import BatchNorm2d
from .nn.pooling import AdaptiveAvgPool2d

TrainingResult = collections.namedtuple("TrainingResult", ["model", "history", "test_accuracy"])
TrainingResult.__doc__ = """``model`` (trained, in eval mode), ``history`` (one dict per epoch:
``epoch``, ``loss``, ``train_accuracy``, ``test_accuracy``) and the final ``test_accuracy``."""


def digits_model(width=32, classes=10):
    """Conv2d stem, then depthwise-separable blocks (each with BatchNorm2d and ReLU), the
    middle one with stride 2, then global average pooling and a Linear classifier::

        (N, 1, 8, 8) -> stem (N, w, 8, 8) -> (N, 2w, 8, 8) -> (N, 2w, 4, 4) -> (N, 2w, 4, 4)
                     -> pool and flatten (N, 2w) -> (N, classes)
    """
    def block(cin, cout, stride=1):
        return [DepthwiseSeparableConv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                BatchNorm2d(cout), ReLU()]
    return nn.Sequential(
        Conv2d(1, width, 3, padding=1, bias=False), BatchNorm2d(width), ReLU(),
        *block(width, 2 * width),
        *block(2 * width, 2 * width, stride=2),
        *block(2 * width, 2 * width),
        AdaptiveAvgPool2d(1), Flatten(), Linear(2 * width, classes),
    )


def load_digits_split(seed=0, test_fraction=0.2):
    """``(x_train, y_train, x_test, y_test)``: images ``(N, 1, 8, 8)`` float32 in [0, 1] and
    int64 labels, split by a permutation drawn from ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("npconv train digits: the digits come from scikit-learn, which is not installed; "
                          "install it with: pip install 'npconv[train]'") from error
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]   # (1797, 1, 8, 8), pixels 0..16 -> [0, 1]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def predict(model, x, batch_size=512):
    """Class predictions of ``model`` in eval mode (its training mode is restored after)."""
    was_training = model.training
    model.eval()
    labels = np.concatenate([model(x[i:i + batch_size]).argmax(axis=1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return labels


def _progress_bar(stream, label, done, total, width=30):
    """Redraw ``label [#####.....] done/total`` in place; erase it when ``done == total``."""
    filled = width * done // total
    line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    stream.write("\r" + (line if done < total else " " * len(line) + "\r"))
    stream.flush()


def train_digits(epochs=12, batch_size=32, lr=3e-3, seed=0, out="digits.npz", print_=print, progress=True):
    """Train :func:`digits_model` on the digits and return a :class:`TrainingResult`.

    Adam with learning rate ``lr`` decayed along a cosine over the epochs.
    ``out``: where to save the weights (``.npz``, see :func:`npconv.nn.save`), or None.
    ``print_``: called with each per-epoch line and the final ``test accuracy: 0.xxxx``.
    ``progress``: draw a progress bar on stderr.  The same ``seed`` gives the same split,
    initial weights and batch order.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"train_digits: {name} must be a positive int, got {value!r}")
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    nn.manual_seed(seed)
    model = digits_model()
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.Adam(model.parameters(), lr=lr)
    batches = -(-len(x_train) // batch_size)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        optimizer.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
        model.train()
        order = rng.permutation(len(x_train))
        loss_sum = correct = 0.0
        for b in range(batches):
            index = order[b * batch_size:(b + 1) * batch_size]
            logits = model(x_train[index])                              # (batch, 10)
            loss = criterion(logits, y_train[index])
            optimizer.zero_grad()
            model.backward(criterion.backward())
            optimizer.step()
            loss_sum += float(loss) * len(index)
            correct += np.count_nonzero(logits.argmax(axis=1) == y_train[index])
            if progress:
                _progress_bar(sys.stderr, f"epoch {epoch}/{epochs}", b + 1, batches)
        history.append(dict(epoch=epoch, loss=loss_sum / len(x_train), train_accuracy=correct / len(x_train),
                            test_accuracy=float(np.mean(predict(model, x_test) == y_test))))
        print_(f"epoch {epoch:>3}/{epochs}  loss {history[-1]['loss']:.4f}  "
               f"train accuracy {history[-1]['train_accuracy']:.4f}  "
               f"test accuracy {history[-1]['test_accuracy']:.4f}  ({time.perf_counter() - start:.1f} s)")
    model.eval()
    if out is not None:
        nn.save(model, out)
        print_(f"weights saved to {out}")
    test_accuracy = history[-1]["test_accuracy"]
    print_(f"test accuracy: {test_accuracy:.4f}")
    return TrainingResult(model, history, test_accuracy)
