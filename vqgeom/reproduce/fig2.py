"""Figure 2: MDS embeddings of the VQ-Kernel on the high-dimensional two moons, original vs rotated vs Euclidean.

Paper settings (Appendix A.3): the two moons of A.1 (n = 150) embedded in R^100 as
``[0.1 u, z]`` with ``z`` uniform on the sphere of radius ``sqrt(1 - ||0.1 u||^2)`` (unit-norm
points), a copy rotated by pi/6 in the signal plane; ReLU MLPs with 3 hidden layers of width 64 trained
with binary cross-entropy until convergence; the MDS embedding of the VQ-Kernel on the training data,
against the MDS embedding of the Euclidean distances; bottom row: the distance matrices.

Measured claims (seed 0 is drawn; the numbers are over all seeds):

- *commutes with the rotation*: kernel correlation ``K(X)`` vs ``K_rot(R X)`` and the Procrustes
  disparity of their 2-D MDS embeddings, against two networks trained on the same data from
  different initial weights.
- *low rank*: normalised MDS spectrum, VQ against Euclidean (classical MDS of squared distances).
- *separability*: leave-one-out 5-NN accuracy in the 2-D MDS embedding and with the full distance,
  VQ against Euclidean, with the signal plane alone as the oracle.
- *sees the signal*: correlation of each distance with the distance in the signal plane
  ``||u_i - u_j||``, over all pairs and within each class (where the labels the network was
  trained on cannot explain it); and the networks' accuracy on held-out points (do they learn the moons or
  memorise the noise?).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .. import data, models
from ._common import (
    Context,
    euclidean_sq,
    loo_knn_accuracy,
    offdiag_corr,
    order_by_label,
    procrustes,
    pyplot,
    save_csv,
    save_json,
    savefig,
    spectrum,
)


@dataclass(frozen=True)
class Settings:
    """Settings of Fig. 2 (paper values as defaults; unstated ones marked)."""

    n: int = 150
    noise: float = 0.1  # not stated in the paper
    dim: int = 100
    scale: float = 0.1
    angle: float = np.pi / 6
    width: int = 64
    depth: int = 3
    lr: float = 1e-3  # Adam; not stated
    max_epochs: int = 5000
    loss_tol: float = 1e-4
    patience: int = 200
    seeds: int = 5
    data_seed: int = 0
    n_test: int = 1000  # held-out points to check what the networks learned (not in the paper)
    knn_k: int = 5


SMALL = dict(n=60, width=16, max_epochs=300, patience=50, seeds=2, n_test=200)


def settings(small: bool) -> Settings:
    """The paper's settings, or the reduced ones of the smoke tests."""
    return replace(Settings(), **SMALL) if small else Settings()


def run(ctx: Context) -> dict[str, Any]:
    """Train, measure and draw Fig. 2 into ``ctx.out``; return the summary of the claims."""
    import vqgeom

    s = settings(ctx.small)
    X, y = data.high_dim_moons(s.n, s.noise, s.data_seed, dim=s.dim, scale=s.scale)
    Xr = data.rotate(X, s.angle)
    Xt, yt = data.high_dim_moons(s.n_test, s.noise, s.data_seed + 1, dim=s.dim, scale=s.scale)
    U = X[:, :2] / s.scale  # the 2-D moons behind the data

    nets: dict[str, list] = {"original": [], "rotated": []}
    training = []
    with ctx.step(f"train {2 * s.seeds} MLPs ({s.depth} x {s.width}, {s.seeds} seeds x original/rotated)"):
        for seed in range(s.seeds):
            for tag, XX, XT in (("original", X, Xt), ("rotated", Xr, data.rotate(Xt, s.angle))):
                net = models.mlp(s.dim, s.width, s.depth, 1, seed=seed)
                r = models.train(
                    net, XX, y, "bce", lr=s.lr, max_epochs=s.max_epochs, loss_tol=s.loss_tol, patience=s.patience,
                    seed=seed, threads=1, progress=ctx.progress, desc=f"fig2 {tag} seed {seed}",
                )
                nets[tag].append(net)
                info = dict(model=tag, seed=seed, epochs=r.epochs, loss=r.loss, accuracy=r.accuracy,
                            test_accuracy=models.accuracy(net, XT, yt), stop_reason=r.stop_reason, seconds=r.seconds)
                training.append(info)
                models.save_checkpoint(net, ctx.out / f"model_{tag}_seed{seed}.pt", meta=info)
                ctx.log(f"  {tag} seed {seed}: {r.epochs} epochs, loss {r.loss:.2e}, train acc {r.accuracy:.3f}, "
                        f"held-out acc {info['test_accuracy']:.3f} ({r.stop_reason})")

    claims: dict[str, Any] = {}
    with ctx.step("kernels, embeddings and measures"):
        co = [vqgeom.encode(m, X) for m in nets["original"]]
        cr = [vqgeom.encode(m, Xr) for m in nets["rotated"]]
        K = lambda c: np.asarray(vqgeom.pairwise_distances(c))  # noqa: E731
        emb = lambda c: np.asarray(vqgeom.mds(c, 2).embedding)  # noqa: E731
        Ko, Kr = [K(c) for c in co], [K(c) for c in cr]
        Eo, Er = [emb(c) for c in co], [emb(c) for c in cr]
        pairs = [(i, j) for i in range(s.seeds) for j in range(i + 1, s.seeds)]
        claims["kernel_corr"] = {
            "rotated_corresponding": [offdiag_corr(Ko[i], Kr[i]) for i in range(s.seeds)],
            "same_data_other_seed": [offdiag_corr(Ko[i], Ko[j]) for i, j in pairs],
        }
        claims["procrustes_2d"] = {
            "rotated_corresponding": [procrustes(Eo[i], Er[i]) for i in range(s.seeds)],
            "same_data_other_seed": [procrustes(Eo[i], Eo[j]) for i, j in pairs],
        }
        D_e = euclidean_sq(X)
        D_u = euclidean_sq(U)
        E_e = np.asarray(vqgeom.mds(D_e, 2).embedding)
        claims["spectrum"] = {"vq": spectrum(co[0]), "vq_rotated": spectrum(cr[0]), "euclidean": spectrum(D_e)}
        claims["knn_loo_accuracy"] = {
            "vq_mds2": [loo_knn_accuracy(euclidean_sq(E), y, s.knn_k) for E in Eo],
            "vq_full": [loo_knn_accuracy(k, y, s.knn_k) for k in Ko],
            "euclidean_mds2": [loo_knn_accuracy(euclidean_sq(E_e), y, s.knn_k)],
            "euclidean_full": [loo_knn_accuracy(D_e, y, s.knn_k)],
            "signal_plane_oracle": [loo_knn_accuracy(D_u, y, s.knn_k)],
        }
        # distances compared with the distance in the signal plane (not squared: like the kernel's scale)
        d_u = np.sqrt(D_u)
        claims["corr_with_signal_distance"] = {
            "vq": [offdiag_corr(k, d_u) for k in Ko],
            "euclidean": [offdiag_corr(np.sqrt(D_e), d_u)],
        }
        # the same within each class only: geometry beyond the labels the network was trained on
        same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
        within = lambda A: float(np.corrcoef(np.asarray(A, dtype=np.float64)[same], d_u[same])[0, 1])  # noqa: E731
        claims["within_class_corr_with_signal_distance"] = {
            "vq": [within(k) for k in Ko],
            "euclidean": [within(np.sqrt(D_e))],
        }
        claims["held_out_accuracy"] = {
            tag: [t["test_accuracy"] for t in training if t["model"] == tag] for tag in ("original", "rotated")
        }

    with ctx.step("draw and write"):
        order = order_by_label(y)
        plt = pyplot()
        fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
        panels = (
            ("VQ-Kernel, original", Eo[0], Ko[0]),
            ("VQ-Kernel, rotated", Er[0], Kr[0]),
            ("Euclidean", E_e, np.sqrt(D_e)),
        )
        acc = [claims["knn_loo_accuracy"][k][0] for k in ("vq_mds2", "vq_mds2", "euclidean_mds2")]
        acc[1] = loo_knn_accuracy(euclidean_sq(Er[0]), y, s.knn_k)
        for col, (title, E, D) in enumerate(panels):
            ax = axes[0, col]
            ax.scatter(E[:, 0], E[:, 1], c=y, cmap="coolwarm", s=10, edgecolors="k", linewidths=0.2)
            ax.set_title(f"MDS: {title}\n(LOO {s.knn_k}-NN accuracy {acc[col]:.2f})", fontsize=10)
            ax.set_aspect("equal", adjustable="datalim")
            im = axes[1, col].imshow(D[np.ix_(order, order)], cmap="viridis")
            axes[1, col].set_title(f"distances: {title} (by label)", fontsize=10)
            fig.colorbar(im, ax=axes[1, col], fraction=0.046)
        fig.suptitle(f"Fig. 2: two moons in R^{s.dim} (signal x{s.scale}), ReLU MLP {s.depth} x {s.width}")
        files = savefig(fig, ctx.out, "fig2")

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, key in (("VQ", "vq"), ("VQ, rotated", "vq_rotated"), ("Euclidean", "euclidean")):
            lam = np.asarray(claims["spectrum"][key]["eigenvalues"][:30])
            ax.semilogy(np.arange(1, len(lam) + 1), np.maximum(lam, 1e-16), "o-", ms=3, label=label)
        ax.set_xlabel("k")
        ax.set_ylabel("$|\\lambda_k| / |\\lambda_1|$ of B")
        ax.legend()
        ax.set_title("Fig. 2: MDS spectrum decay, VQ vs Euclidean")
        files += savefig(fig, ctx.out, "fig2_spectrum")

        files.append(save_csv(
            ctx.out / "fig2_embeddings.csv",
            ["label", "u1", "u2", "vq_x", "vq_y", "vq_rot_x", "vq_rot_y", "eucl_x", "eucl_y"],
            np.column_stack([y, U, Eo[0], Er[0], E_e]).tolist(),
        ))
        for tag, D, fmt in (("vq_original", Ko[0], "%d"), ("vq_rotated", Kr[0], "%d"), ("euclidean", np.sqrt(D_e), "%.6f")):
            path = ctx.out / f"fig2_distances_{tag}.csv"
            np.savetxt(path, D[np.ix_(order, order)], fmt=fmt, delimiter=",",
                       header=f"{tag} distances on the training set, ordered by label: " + " ".join(map(str, y[order])))
            files.append(path)
        summary = summarise(claims)
        result = dict(figure="fig2", settings=asdict(s), small=ctx.small, training=training, claims=claims,
                      summary=summary, machine=ctx.machine(), seconds=ctx.steps)
        files.append(save_json(result, ctx.out / "fig2.json"))
    for line in report_lines(summary):
        ctx.log(line)
    return result


def _ms(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def summarise(claims: dict[str, Any]) -> dict[str, Any]:
    """Mean and spread over seeds of every measured claim."""
    out: dict[str, Any] = {
        g: {k: _ms(v) for k, v in claims[g].items() if v}
        for g in ("kernel_corr", "procrustes_2d", "knn_loo_accuracy", "corr_with_signal_distance",
                  "within_class_corr_with_signal_distance", "held_out_accuracy")
    }
    out["spectrum"] = {k: {"lambda2": v["eigenvalues"][1], "lambda3": v["eigenvalues"][2],
                           "effective_rank": v["effective_rank"], "k90": v["k90"]}
                       for k, v in claims["spectrum"].items()}
    return out


def report_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of the summary (printed, and pasted into REPRODUCTION.md)."""
    out = []
    for group, items in summary.items():
        if group == "spectrum":
            continue
        for k, v in items.items():
            out.append(f"{group:<38} {k:<24} {v['mean']:.4f} +- {v['std']:.4f} (n={v['n']})")
    for k, v in summary["spectrum"].items():
        out.append(f"{'spectrum':<38} {k:<24} l2/l1={v['lambda2']:.3f} l3/l1={v['lambda3']:.3f} "
                   f"eff.rank={v['effective_rank']:.2f} k90={v['k90']}")
    return out
