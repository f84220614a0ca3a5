"""Figures 3 and 4: heat-kernel cosine similarities of VQ-Kernels of MNIST MLPs, trained and at initialisation.

Paper settings (Section 3.1, Appendix A.2): MNIST split into 8,000 training and 2,000 test images
(28 x 28); ReLU MLPs with L = 4 and L = 6 hidden layers of width 16, trained (cross-entropy,
Adam) until convergence; VQ-Kernels on the test set for the trained and the randomly initialised
networks; cosine similarities between the heat kernels ``exp(-k^2 / sigma^2)`` (Appendix A.2;
Section 3.1 writes ``exp(-d / sigma^2)``, ERRATA item 2: both are computed, the squared form is
the headline). Fig. 3 is one sigma^2, Fig. 4 a sweep.

What the paper leaves open, and what is done here:

- *which images*: the 10,000 t10k images (the files shipped here), split 8,000 / 2,000 at random
  (seed ``split_seed``).
- *sigma^2 of Fig. 3*: not stated. Fixed a priori by the median heuristic: the median of the
  squared VQ distances pooled over the four networks (for the squared form; the median distance
  for the other). The sigma^2 of the sweep closest to the paper's table is reported too, labelled
  as fitted.
- *initialisations*: every network and every replicate gets its own seed (a shared seed would give
  the 4- and 6-layer networks identical first four layers, and a similarity near 1 at init).
- *replicates*: ``seeds`` independent replicates (initialisation and training); mean and spread.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .. import data, models
from ._common import Context, pyplot, save_csv, save_json, savefig

NAMES = ("Trained(4)", "Trained(6)", "Init(4)", "Init(6)")

PAPER_FIG3 = np.array(
    [
        [1.00, 0.55, 0.28, 0.38],
        [0.55, 1.00, 0.28, 0.40],
        [0.28, 0.28, 1.00, 0.87],
        [0.38, 0.40, 0.87, 1.00],
    ]
)
"""The paper's Fig. 3 table as ERRATA item 4 reads it (rows/columns in the order of NAMES)."""


@dataclass(frozen=True)
class Settings:
    """Settings of Figs. 3/4 (paper values as defaults; unstated ones marked)."""

    n_train: int = 8000
    n_test: int = 2000
    split_seed: int = 0
    width: int = 16
    depths: tuple[int, ...] = (4, 6)
    lr: float = 1e-3  # not stated
    batch_size: int = 128  # not stated
    max_epochs: int = 300
    loss_tol: float = 1e-3
    patience: int = 20
    seeds: int = 5
    sigma2_sweep: tuple[float, ...] = field(default_factory=lambda: tuple(np.logspace(0, 5, 21).tolist()))


SMALL = dict(n_train=600, n_test=200, max_epochs=15, patience=5, seeds=1,
             sigma2_sweep=tuple(np.logspace(0, 4, 5).tolist()))


def settings(small: bool) -> Settings:
    """The paper's settings, or the reduced ones of the smoke tests."""
    return replace(Settings(), **SMALL) if small else Settings()


def _test_set(ctx: Context, s: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    images, labels = data.load_mnist(ctx.mnist)
    X = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return data.split(X, labels, s.n_train, s.n_test, seed=s.split_seed)


def networks(ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Settings]:
    """The four networks of every replicate, encoded on the test set; trained once, then cached.

    Checkpoints live in ``<out>/../mnist-models/`` with the settings they were trained with;
    Fig. 3 and Fig. 4 share them (a second call with the same settings only loads them).

    Returns
    -------
    codes : list (one per replicate) of dict name -> Codes on the test images
    training : list of dicts, one per trained network (epochs, loss, accuracies, stop reason, seconds)
    settings : Settings
    """
    import vqgeom

    s = settings(ctx.small)
    cache = ctx.out.parent / "mnist-models"
    cache.mkdir(parents=True, exist_ok=True)
    with ctx.step(f"load MNIST and split {s.n_train} / {s.n_test}"):
        Xtr, ytr, Xte, yte = _test_set(ctx, s)
    key = json.loads(json.dumps(asdict(s)))
    key.pop("sigma2_sweep")
    stamp = cache / "settings.json"
    reuse = stamp.is_file() and json.loads(stamp.read_text()) == key
    codes, training = [], []
    label = "load cached" if reuse else "train"
    with ctx.step(f"{label} {len(s.depths) * s.seeds} MLPs (width {s.width}, depths {s.depths}, {s.seeds} replicates)"):
        for rep in range(s.seeds):
            nets = {}
            for depth in s.depths:
                f_init, f_trained = cache / f"init{depth}_rep{rep}.pt", cache / f"trained{depth}_rep{rep}.pt"
                if reuse:
                    nets[f"Init({depth})"], _ = models.load_checkpoint(f_init)
                    nets[f"Trained({depth})"], info = models.load_checkpoint(f_trained)
                else:
                    net = models.mlp(784, s.width, depth, 10, seed=1000 * rep + depth)  # own seed per network
                    nets[f"Init({depth})"] = copy.deepcopy(net)
                    r = models.train(net, Xtr, ytr, "ce", lr=s.lr, batch_size=s.batch_size, max_epochs=s.max_epochs,
                                     loss_tol=s.loss_tol, patience=s.patience, seed=rep, threads=1,
                                     progress=ctx.progress, desc=f"MNIST depth {depth} rep {rep}")
                    info = dict(depth=depth, replicate=rep, epochs=r.epochs, loss=r.loss, train_accuracy=r.accuracy,
                                test_accuracy=models.accuracy(net, Xte, yte),
                                init_test_accuracy=models.accuracy(nets[f"Init({depth})"], Xte, yte),
                                stop_reason=r.stop_reason, seconds=r.seconds)
                    models.save_checkpoint(nets[f"Init({depth})"], f_init, meta={"depth": depth, "replicate": rep})
                    models.save_checkpoint(net, f_trained, meta=info)
                    nets[f"Trained({depth})"] = net
                training.append(info)
                ctx.log(f"  depth {depth} rep {rep}: {info['epochs']} epochs ({info['stop_reason']}), train acc "
                        f"{info['train_accuracy']:.3f}, test acc {info['test_accuracy']:.3f}")
            codes.append({n: vqgeom.encode(nets[n], Xte) for n in NAMES})
    if not reuse:
        stamp.write_text(json.dumps(key, indent=2) + "\n")
    return codes, training, s


def _median_sigma2(codes: dict[str, Any], squared: bool) -> float:
    """The median heuristic: median of the (squared) off-diagonal VQ distances pooled over the networks."""
    import vqgeom

    vals = []
    for n in NAMES:
        K = np.asarray(vqgeom.pairwise_distances(codes[n])).astype(np.float64)
        iu = np.triu_indices(K.shape[0], 1)
        vals.append(K[iu] ** 2 if squared else K[iu])
    return float(np.median(np.concatenate(vals)))


def _similarities(codes: list[dict[str, Any]], sigma2s: Any, squared: bool) -> np.ndarray:
    """(replicates, S, 4, 4) heat-kernel cosine similarities."""
    import vqgeom

    return np.stack([vqgeom.compare([c[n] for n in NAMES], sigma2s=sigma2s, squared=squared, names=list(NAMES)).similarity
                     for c in codes])


def _table(mean: np.ndarray, std: np.ndarray | None, paper: np.ndarray | None = None) -> str:
    w = 12
    head = " " * w + "".join(f"{n:>{w}}" for n in NAMES)
    rows = [head]
    for i, a in enumerate(NAMES):
        cells = []
        for j in range(len(NAMES)):
            cell = f"{mean[i, j]:.2f}" + (f"+-{std[i, j]:.2f}" if std is not None and std[i, j] >= 0.005 else "")
            if paper is not None:
                cell += f" ({paper[i, j]:.2f})"
            cells.append(f"{cell:>{w + (7 if paper is not None else 0)}}")
        rows.append(f"{a:<{w}}" + "".join(cells))
    return "\n".join(rows)


def _pairs() -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(NAMES)) for j in range(i + 1, len(NAMES))]


def run_fig3(ctx: Context) -> dict[str, Any]:
    """Fig. 3: the 4 x 4 table at one sigma^2, beside the paper's; writes PNG/PDF, CSV, JSON."""
    codes, training, s = networks(ctx)
    results: dict[str, Any] = {}
    with ctx.step("heat-kernel cosine similarities at the median-heuristic sigma^2 (both forms)"):
        for form, squared in (("squared", True), ("plain", False)):
            s2 = [_median_sigma2(c, squared) for c in codes]
            sims = np.stack([_similarities([c], [v], squared)[0, 0] for c, v in zip(codes, s2)])
            # the sigma^2 of the sweep whose mean table is closest (RMS over the 6 pairs) to the paper's: fitted, for reference
            sweep = _similarities(codes, s.sigma2_sweep, squared).mean(0)
            iu = np.triu_indices(len(NAMES), 1)
            rms = np.sqrt(((sweep[:, iu[0], iu[1]] - PAPER_FIG3[iu]) ** 2).mean(1))
            best = int(np.argmin(rms))
            results[form] = dict(
                heat_kernel="exp(-d^2/sigma2)" if squared else "exp(-d/sigma2)",
                sigma2_rule="median of the pooled squared VQ distances" if squared else "median of the pooled VQ distances",
                sigma2_per_replicate=s2, mean=sims.mean(0), std=sims.std(0), per_replicate=sims,
                rms_vs_paper=float(np.sqrt(((sims.mean(0)[iu] - PAPER_FIG3[iu]) ** 2).mean())),
                fitted_sigma2=float(s.sigma2_sweep[best]), fitted_mean=sweep[best], fitted_rms_vs_paper=float(rms[best]),
            )
    lines = []
    for form, r in results.items():
        lines += [
            f"Fig. 3, heat kernel {r['heat_kernel']}, sigma2 = {np.mean(r['sigma2_per_replicate']):.4g} "
            f"({r['sigma2_rule']}), mean +- std over {len(codes)} replicate(s), paper's value in parentheses:",
            _table(r["mean"], r["std"], PAPER_FIG3),
            f"RMS difference to the paper over the 6 pairs: {r['rms_vs_paper']:.3f}",
            f"closest sigma2 of the sweep (fitted to the paper, for reference only): {r['fitted_sigma2']:.4g}, "
            f"RMS {r['fitted_rms_vs_paper']:.3f}",
            _table(r["fitted_mean"], None, PAPER_FIG3),
            "",
        ]
    text = "\n".join(lines)
    print(text, flush=True)

    with ctx.step("draw and write"):
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
        panels = (
            ("paper (ERRATA item 4)", PAPER_FIG3),
            (f"ours, exp(-d^2/s2), s2 = {np.mean(results['squared']['sigma2_per_replicate']):.3g}", results["squared"]["mean"]),
            (f"ours, exp(-d/s2), s2 = {np.mean(results['plain']['sigma2_per_replicate']):.3g}", results["plain"]["mean"]),
        )
        for ax, (title, M) in zip(axes, panels):
            ax.imshow(M, vmin=0, vmax=1, cmap="magma")
            for i in range(len(NAMES)):
                for j in range(len(NAMES)):
                    ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", color="w" if M[i, j] < 0.6 else "k")
            ax.set_xticks(range(len(NAMES)), NAMES, rotation=30)
            ax.set_yticks(range(len(NAMES)), NAMES if ax is axes[0] else [""] * len(NAMES))
            ax.set_title(title, fontsize=10)
        fig.suptitle("Fig. 3: cosine similarities of heat kernels of VQ-Kernels, MNIST test set")
        savefig(fig, ctx.out, "fig3")
        rows = []
        for form, r in results.items():
            for rep, M in enumerate(r["per_replicate"]):
                for i, j in _pairs():
                    rows.append([form, rep, r["sigma2_per_replicate"][rep], NAMES[i], NAMES[j], float(M[i, j]), PAPER_FIG3[i, j]])
        save_csv(ctx.out / "fig3.csv", ["form", "replicate", "sigma2", "a", "b", "ours", "paper"], rows)
        (ctx.out / "fig3.txt").write_text(text)
        result = dict(figure="fig3", settings=asdict(s), small=ctx.small, names=NAMES, paper=PAPER_FIG3,
                      training=training, results=results, machine=ctx.machine(), seconds=ctx.steps)
        save_json(result, ctx.out / "fig3.json")
    return result


def run_fig4(ctx: Context) -> dict[str, Any]:
    """Fig. 4: the six similarities over the sigma^2 sweep, both heat-kernel forms; PNG/PDF, CSV, JSON."""
    codes, training, s = networks(ctx)
    sweep = np.asarray(s.sigma2_sweep)
    sims = {}
    with ctx.step(f"similarities over {len(sweep)} values of sigma^2, both forms"):
        for form, squared in (("squared", True), ("plain", False)):
            sims[form] = _similarities(codes, sweep, squared)  # (R, S, 4, 4)

    with ctx.step("draw and write"):
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
        for ax, (form, title) in zip(axes, (("squared", "exp(-d^2 / sigma^2)  (Appendix A.2)"),
                                            ("plain", "exp(-d / sigma^2)  (Section 3.1)"))):
            for (i, j), color in zip(_pairs(), plt.cm.tab10.colors):
                v = sims[form][:, :, i, j]
                ax.semilogx(sweep, v.mean(0), "o-", ms=3, color=color, label=f"{NAMES[i]} vs {NAMES[j]}")
                if v.shape[0] > 1:
                    ax.fill_between(sweep, v.min(0), v.max(0), color=color, alpha=0.2)
                ax.axhline(PAPER_FIG3[i, j], color=color, ls=":", lw=1)
            ax.set_xlabel("$\\sigma^2$")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("cosine similarity of heat kernels")
        axes[1].legend(fontsize=8, loc="lower right")
        fig.suptitle("Fig. 4: similarities over $\\sigma^2$ (band: min-max over replicates; dotted: paper's Fig. 3 values)")
        savefig(fig, ctx.out, "fig4")
        rows = [[form, rep, float(sweep[k]), NAMES[i], NAMES[j], float(sims[form][rep, k, i, j])]
                for form in sims for rep in range(sims[form].shape[0]) for k in range(len(sweep)) for i, j in _pairs()]
        save_csv(ctx.out / "fig4.csv", ["form", "replicate", "sigma2", "a", "b", "similarity"], rows)
        result = dict(figure="fig4", settings=asdict(s), small=ctx.small, names=NAMES, sigma2=sweep,
                      mean={f: v.mean(0) for f, v in sims.items()}, std={f: v.std(0) for f, v in sims.items()},
                      training=training, machine=ctx.machine(), seconds=ctx.steps)
    # the paper's claim, in its two readings: where over the sweep does it hold (replicate means)?
    claims = {}
    for form in sims:
        m = sims[form].mean(0)
        tt, ii = m[:, 0, 1], m[:, 2, 3]
        ti = m[:, :2, 2:].reshape(len(sweep), -1).max(1)
        claims[form] = {
            "trained_pair_above_init_pair": sweep[tt > ii],  # caption: "become more similar when trained"
            "trained_pair_above_every_trained_init_pair": sweep[tt > ti],  # text: "more similar to each other"
        }
        ctx.log(f"{form}: T(4)-T(6) > I(4)-I(6) at {int((tt > ii).sum())}/{len(sweep)} sigma^2 values "
                f"{np.round(sweep[tt > ii], 3).tolist()}; T(4)-T(6) > every T-I pair at {int((tt > ti).sum())}/{len(sweep)} "
                f"{np.round(sweep[tt > ti], 3).tolist()}")
    result["claims"] = claims
    save_json(result, ctx.out / "fig4.json")
    return result
