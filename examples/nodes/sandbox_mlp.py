"""Train train_torch's MLP in the sandbox: a user-written training node (PyTorch).

Input ``train``: labelled rows in time order (feature columns, ``label`` in -1/0/1 and, from
the labelling nodes, ``label_end``). Output ``model``: the trained network as a dict, which the
sandbox turns into a model file (JSON and arrays, never a pickle); the built-in ``predict``
node uses it like a ``train_torch`` model, and a tracked run logs and registers it.

As train_torch does: the last ``val`` fraction of the rows validates (by time, never
shuffled), the scaler is fitted on the training rows only, torch is seeded and deterministic,
and the weights of the epoch with the lowest validation loss are kept.
"""

import numpy as np
import torch
from alphaforge_ml import build_network  # in the sandbox image: train_torch's networks


def run(inputs, params):
    frame = inputs["train"]
    features = params["features"]
    window, hidden, layers = params["window"], params["hidden"], params["layers"]
    x = frame[features].to_numpy(dtype="float64")
    y = frame["label"].to_numpy(dtype="int64") + 1  # the classes -1, 0, 1 as 0, 1, 2
    n_fit = int(len(frame) * (1 - params["val"]))
    mean, std = x[:n_fit].mean(axis=0), x[:n_fit].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    z = ((x - mean) / std).astype(np.float32)
    # sample t: the rows t-window+1 .. t, shape (window, features); its target: row t's label
    windows = np.lib.stride_tricks.sliding_window_view(z, window, axis=0).transpose(0, 2, 1)
    xs = torch.from_numpy(np.ascontiguousarray(windows))
    ys = torch.from_numpy(y[window - 1 :])
    last_row = np.arange(window - 1, len(frame))
    fit = torch.from_numpy(np.flatnonzero(last_row < n_fit))
    val = torch.from_numpy(np.flatnonzero(last_row >= n_fit))

    torch.manual_seed(params["seed"])
    torch.use_deterministic_algorithms(True)
    net = build_network("mlp", len(features), window, hidden, layers)
    opt = torch.optim.Adam(net.parameters(), lr=params["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    history, best, best_state = [], 0, None
    for epoch in range(1, params["epochs"] + 1):
        net.train()
        opt.zero_grad()
        loss = loss_fn(net(xs[fit]), ys[fit])
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(net(xs[val]), ys[val]))
        history.append({"epoch": epoch, "train_loss": loss.item(), "val_loss": val_loss})
        if best == 0 or val_loss < history[best - 1]["val_loss"]:
            best, best_state = epoch, {k: v.clone() for k, v in net.state_dict().items()}
    print(f"best epoch {best} of {len(history)}, val loss {history[best - 1]['val_loss']:.4f}")

    # the last bar the training saw: its last row, or the end of that row's label
    seen_until = frame.index[-1]
    if "label_end" in frame.columns:
        seen_until = max(seen_until, frame["label_end"].max())
    return {
        "model": {
            "arch": "mlp",
            "window": window,
            "hidden": hidden,
            "layers": layers,
            "features": features,
            "state_dict": best_state,
            "mean": mean,
            "std": std,
            "history": history,
            "best_epoch": best,
            "seen_until": seen_until,
            "params": {k: params[k] for k in ("epochs", "lr", "val", "seed")},
        }
    }
