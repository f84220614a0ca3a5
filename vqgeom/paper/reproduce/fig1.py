"""Figure 1: dominant MDS eigenvectors of the VQ-Kernel over the unit disc, original vs rotated training data.

Paper settings (Appendix A.1): two moons, n = 150 in [-1, 1]^2, a copy rotated by pi/6; ReLU MLPs
with 3 hidden layers of width 96 trained with binary cross-entropy until convergence; VQ-Kernels over
the 96 x 96 grid restricted to the unit disc; the three dominant eigenpairs of
``B = (I - J/N) K (I - J/N)`` normalised by the leading eigenvalue; the kernel over the training set
ordered by label.

Measured claims (seed 0 is drawn; the numbers are over all seeds):

- *commutes with the rotation*: correlation between ``K`` on the grid points ``p`` and ``K_rot`` on the
  rotated points ``R p`` (corresponding points), against two references: the same without the
  correspondence (``K_rot`` on ``p``) and two networks trained on the SAME data from different
  initial weights (the agreement training noise allows). Same for the Procrustes disparity of the
  3-D MDS embeddings, and the kernel correlation on the training points (``X`` vs ``R X``).
- *low rank*: the normalised MDS spectrum of the VQ-Kernel (effective rank, k90) against the
  Euclidean one (classical MDS of squared distances; rank 2 for 2-D data).
- *separability*: leave-one-out 5-NN accuracy on the training set, in the 2-D MDS embedding and
  with the full distance, VQ against Euclidean.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ... import models
from .. import data
from ._common import (
    Context,
    class_scatter,
    euclidean_sq,
    kernel_panel,
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
    """Settings of Fig. 1 (paper values as defaults; unstated ones marked in the docs)."""

    n: int = 150
    noise: float = 0.1  # not stated in the paper
    angle: float = np.pi / 6
    width: int = 96
    depth: int = 3
    grid: int = 96
    lr: float = 1e-3  # Adam; not stated
    max_epochs: int = 5000
    loss_tol: float = 1e-4
    patience: int = 200
    seeds: int = 5
    data_seed: int = 0
    knn_k: int = 5


SMALL = dict(n=60, width=16, grid=24, max_epochs=300, patience=50, seeds=2)


def settings(small: bool) -> Settings:
    """The paper's settings, or the reduced ones of the smoke tests."""
    return replace(Settings(), **SMALL) if small else Settings()


def _disc_image(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    img = np.full(mask.shape, np.nan)
    img[mask] = values
    return img


def run(ctx: Context) -> dict[str, Any]:
    """Train, measure and draw Fig. 1 into ``ctx.out``; return the summary of the claims."""
    import vqgeom

    s = settings(ctx.small)
    X, y = data.two_moons(s.n, s.noise, s.data_seed)
    Xr = data.rotate(X, s.angle)
    P, mask = data.disc_grid(s.grid)
    PR = data.rotate(P, s.angle)

    nets: dict[str, list] = {"original": [], "rotated": [], "untrained": []}
    training = []
    with ctx.step(f"train {2 * s.seeds} MLPs ({s.depth} x {s.width}, {s.seeds} seeds x original/rotated)"):
        for seed in range(s.seeds):
            for tag, XX in (("original", X), ("rotated", Xr)):
                net = models.mlp(2, s.width, s.depth, 1, seed=seed)
                if tag == "original":  # both trainings of this seed start from this network
                    nets["untrained"].append(copy.deepcopy(net))
                r = models.train(
                    net, XX, y, "bce", lr=s.lr, max_epochs=s.max_epochs, loss_tol=s.loss_tol, patience=s.patience,
                    seed=seed, threads=1, progress=ctx.progress, desc=f"fig1 {tag} seed {seed}",
                )
                nets[tag].append(net)
                info = dict(model=tag, seed=seed, epochs=r.epochs, loss=r.loss, accuracy=r.accuracy,
                            stop_reason=r.stop_reason, seconds=r.seconds)
                training.append(info)
                models.save_checkpoint(net, ctx.out / f"model_{tag}_seed{seed}.pt", meta=info)
                ctx.log(f"  {tag} seed {seed}: {r.epochs} epochs, loss {r.loss:.2e}, acc {r.accuracy:.3f} ({r.stop_reason})")

    with ctx.step(f"encode the {len(P)}-point disc grid and the training sets"):
        grid_o = [vqgeom.encode(m, P) for m in nets["original"]]
        grid_r_corr = [vqgeom.encode(m, PR) for m in nets["rotated"]]  # R p: the point corresponding to p
        grid_r_same = [vqgeom.encode(m, P) for m in nets["rotated"]]  # p itself: no correspondence
        train_o = [vqgeom.encode(m, X) for m in nets["original"]]
        train_r = [vqgeom.encode(m, Xr) for m in nets["rotated"]]
        grid_u = [vqgeom.encode(m, P) for m in nets["untrained"]]
        grid_u_rot = [vqgeom.encode(m, PR) for m in nets["untrained"]]

    claims: dict[str, Any] = {}
    with ctx.step("kernel agreement under the rotation (grid and training points)"):
        K = lambda c: np.asarray(vqgeom.pairwise_distances(c))  # noqa: E731
        Ko = [K(c) for c in grid_o]  # uint16, (N, N) each: kept for the seed pairs
        corr_rot, corr_norot, corr_train = [], [], []
        for i in range(s.seeds):
            corr_rot.append(offdiag_corr(Ko[i], K(grid_r_corr[i])))
            corr_norot.append(offdiag_corr(Ko[i], K(grid_r_same[i])))
            corr_train.append(offdiag_corr(K(train_o[i]), K(train_r[i])))
        corr_seed = [offdiag_corr(Ko[i], Ko[j]) for i in range(s.seeds) for j in range(i + 1, s.seeds)]
        del Ko
        # the untrained baseline: the common initial network of seed i on p against R p (what the
        # rotation claim would give if training had learned nothing), and two initial networks
        Ku = [K(c) for c in grid_u]
        corr_untrained_rot = [offdiag_corr(Ku[i], K(grid_u_rot[i])) for i in range(s.seeds)]
        corr_untrained_seed = [offdiag_corr(Ku[i], Ku[i + 1]) for i in range(s.seeds - 1)]  # consecutive seeds: enough for a baseline
        del Ku
        claims["kernel_corr"] = {
            "grid_rotated_corresponding": corr_rot,
            "grid_rotated_not_corresponding": corr_norot,
            "grid_same_data_other_seed": corr_seed,
            "train_rotated_corresponding": corr_train,
            "grid_untrained_rotated_inputs": corr_untrained_rot,
            "grid_untrained_other_seed": corr_untrained_seed,
        }

    with ctx.step("MDS (3 components) and Procrustes disparities"):
        emb = lambda c: np.asarray(vqgeom.mds(c, 3).embedding)  # noqa: E731
        e_o = [emb(c) for c in grid_o]
        claims["procrustes_3d"] = {
            "grid_rotated_corresponding": [procrustes(e_o[i], emb(grid_r_corr[i])) for i in range(s.seeds)],
            "grid_rotated_not_corresponding": [procrustes(e_o[i], emb(grid_r_same[i])) for i in range(s.seeds)],
            "grid_same_data_other_seed": [procrustes(e_o[i], e_o[j]) for i in range(s.seeds) for j in range(i + 1, s.seeds)],
            "grid_untrained_rotated_inputs": [procrustes(emb(grid_u[i]), emb(grid_u_rot[i])) for i in range(s.seeds)],
        }

    with ctx.step("spectra and k-NN separability"):
        D_e = euclidean_sq(X)
        claims["spectrum"] = {
            "vq_grid": spectrum(grid_o[0]),
            "vq_grid_rotated": spectrum(grid_r_same[0]),
            "vq_train": spectrum(train_o[0]),
            "euclidean_train": spectrum(D_e),
        }
        knn: dict[str, list[float]] = {"vq_mds2": [], "vq_full": []}
        for c in train_o:
            E = np.asarray(vqgeom.mds(c, 2).embedding)
            knn["vq_mds2"].append(loo_knn_accuracy(euclidean_sq(E), y, s.knn_k))
            knn["vq_full"].append(loo_knn_accuracy(K(c), y, s.knn_k))
        E = np.asarray(vqgeom.mds(D_e, 2).embedding)
        knn["euclidean_mds2"] = [loo_knn_accuracy(euclidean_sq(E), y, s.knn_k)]
        knn["euclidean_full"] = [loo_knn_accuracy(D_e, y, s.knn_k)]
        claims["knn_loo_accuracy"] = knn

    with ctx.step("draw and write"):
        m_o = vqgeom.mds(grid_o[0], 3)
        m_r = vqgeom.mds(grid_r_same[0], 3)
        order = order_by_label(y)
        K_o, K_r = K(train_o[0]), K(train_r[0])
        plt = pyplot()
        fig, axes = plt.subplots(2, 4, figsize=(20, 8.6), layout="constrained")
        for row, (tag, res, XX, Kt) in enumerate((("original", m_o, X, K_o), ("rotated", m_r, Xr, K_r))):
            for k in range(3):
                v = np.asarray(res.eigenvectors)[:, k]
                lim = np.abs(v).max()
                ax = axes[row, k]
                im = ax.imshow(_disc_image(v, mask), origin="lower", extent=(-1, 1, -1, 1), cmap="RdBu_r",
                               vmin=-lim, vmax=lim)
                class_scatter(ax, XX, y, s=18, legend=(row == 0 and k == 0))
                ax.set_xlim(-1.05, 1.05)
                ax.set_ylim(-1.05, 1.05)
                ax.set_aspect("equal")
                ax.set_xlabel("$x_1$")
                ax.set_ylabel("$x_2$")
                ax.set_title(f"{tag} data: $v_{k + 1}$,  $\\lambda_{k + 1}/\\lambda_1$ = {float(res.eigenvalues[k]):.2f}",
                             fontsize=10)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"$v_{k + 1}$ (sign arbitrary)")
            kernel_panel(fig, axes[row, 3], Kt[np.ix_(order, order)], y[order],
                         f"{tag} data: VQ-Kernel on the training set", "VQ distance (hyperplanes)")
        fig.suptitle(
            f"Fig. 1: ReLU MLP {s.depth} $\\times$ {s.width}, two moons (n = {s.n}); bottom row: data rotated by "
            f"{np.degrees(s.angle):.0f}°; kernel correlation $K(p)$ vs $K_{{rot}}(Rp)$ = {corr_rot[0]:.3f} "
            f"(untrained network: {corr_untrained_rot[0]:.3f})"
        )
        files = savefig(fig, ctx.out, "fig1")

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, key in (("VQ, disc grid", "vq_grid"), ("VQ, training set", "vq_train"), ("Euclidean, training set", "euclidean_train")):
            lam = np.asarray(claims["spectrum"][key]["eigenvalues"][:20])
            ax.semilogy(np.arange(1, len(lam) + 1), np.maximum(lam, 1e-16), "o-", ms=3, label=label)
        ax.set_xlabel("index $k$")
        ax.set_ylabel("$|\\lambda_k| / |\\lambda_1|$ of $B$")
        ax.set_ylim(1e-4, 1.5)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        ax.set_title("Fig. 1: MDS spectrum decay")
        files += savefig(fig, ctx.out, "fig1_spectrum")

        ev_o, ev_r = np.asarray(m_o.eigenvectors), np.asarray(m_r.eigenvectors)
        files.append(save_csv(
            ctx.out / "fig1_grid.csv",
            ["x", "y", "orig_v1", "orig_v2", "orig_v3", "rot_v1", "rot_v2", "rot_v3"],
            np.column_stack([P, ev_o, ev_r]).tolist(),
        ))
        for tag, Kt in (("original", K_o), ("rotated", K_r)):
            path = ctx.out / f"fig1_kernel_train_{tag}.csv"
            np.savetxt(path, Kt[np.ix_(order, order)], fmt="%d", delimiter=",",
                       header=f"VQ-Kernel on the {tag} training set, rows/columns ordered by label: "
                       + " ".join(map(str, y[order])))
            files.append(path)
        summary = summarise(claims)
        result = dict(
            figure="fig1", settings=asdict(s), small=ctx.small, training=training, claims=claims, summary=summary,
            eigenvalues={"original": np.asarray(m_o.eigenvalues), "rotated": np.asarray(m_r.eigenvalues)},
            machine=ctx.machine(), seconds=ctx.steps,
        )
        files.append(save_json(result, ctx.out / "fig1.json"))
    for line in report_lines(summary):
        ctx.log(line)
    return result


def _ms(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def summarise(claims: dict[str, Any]) -> dict[str, Any]:
    """Mean and spread over seeds of every measured claim."""
    sp = claims["spectrum"]
    return {
        "kernel_corr": {k: _ms(v) for k, v in claims["kernel_corr"].items() if v},
        "procrustes_3d": {k: _ms(v) for k, v in claims["procrustes_3d"].items() if v},
        "spectrum": {k: {"lambda2": v["eigenvalues"][1], "lambda3": v["eigenvalues"][2], "effective_rank": v["effective_rank"],
                         "k90": v["k90"]} for k, v in sp.items()},
        "knn_loo_accuracy": {k: _ms(v) for k, v in claims["knn_loo_accuracy"].items()},
    }


def report_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of the summary (printed, and pasted into REPRODUCTION.md)."""
    out = []
    for group in ("kernel_corr", "procrustes_3d", "knn_loo_accuracy"):
        for k, v in summary[group].items():
            out.append(f"{group:<16} {k:<32} {v['mean']:.4f} +- {v['std']:.4f} (n={v['n']})")
    for k, v in summary["spectrum"].items():
        out.append(f"{'spectrum':<16} {k:<32} l2/l1={v['lambda2']:.3f} l3/l1={v['lambda3']:.3f} "
                   f"eff.rank={v['effective_rank']:.2f} k90={v['k90']}")
    return out
