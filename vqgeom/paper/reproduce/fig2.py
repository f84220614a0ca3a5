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
    # beside the paper's setting, one where the networks generalise (not in the paper): more points and a
    # stronger signal; both are then measured on the same number of held-out points
    gen_n: int = 1000
    gen_scale: float = 0.5
    gen_loss_tol: float = 1e-3
    gen_patience: int = 50
    n_kernel: int = 500  # held-out points on which the kernels of both settings are measured


SMALL = dict(n=60, width=16, max_epochs=300, patience=50, seeds=2, n_test=200, gen_n=200, n_kernel=100)


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

    with ctx.step(f"generalising setting: {s.seeds} MLPs on {s.gen_n} points, signal x{s.gen_scale}; kernels on "
                  f"{s.n_kernel} held-out points of both settings"):
        held = _held_out_measures(ctx, s, nets["original"], training)
    claims["held_out_kernels"] = held["claims"]

    with ctx.step("draw and write"):
        order = order_by_label(y)
        plt = pyplot()
        fig, axes = plt.subplots(2, 3, figsize=(15.5, 9.5), layout="constrained")
        panels = (
            ("VQ-Kernel, original", Eo[0], Ko[0], "VQ distance (hyperplanes)"),
            ("VQ-Kernel, rotated", Er[0], Kr[0], "VQ distance (hyperplanes)"),
            ("Euclidean", E_e, np.sqrt(D_e), "Euclidean distance"),
        )
        acc = [claims["knn_loo_accuracy"][k][0] for k in ("vq_mds2", "vq_mds2", "euclidean_mds2")]
        acc[1] = loo_knn_accuracy(euclidean_sq(Er[0]), y, s.knn_k)
        for col, (title, E, D, clabel) in enumerate(panels):
            ax = axes[0, col]
            class_scatter(ax, E, y, s=14, legend=(col == 0))
            ax.set_title(f"MDS: {title}\n(LOO {s.knn_k}-NN accuracy {acc[col]:.2f})", fontsize=10)
            ax.set_aspect("equal", adjustable="datalim")
            ax.margins(0.06)
            ax.set_xlabel("MDS coordinate 1")
            ax.set_ylabel("MDS coordinate 2")
            kernel_panel(fig, axes[1, col], D[np.ix_(order, order)], y[order], f"distances: {title}", clabel)
        fig.suptitle(f"Fig. 2: two moons in R$^{{{s.dim}}}$ (signal $\\times${s.scale}), ReLU MLP {s.depth} $\\times$ "
                     f"{s.width}, n = {s.n} training points (held-out accuracy "
                     f"{np.mean(claims['held_out_accuracy']['original']):.2f}: see fig2_heldout)")
        files = savefig(fig, ctx.out, "fig2")

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, key in (("VQ", "vq"), ("VQ, rotated", "vq_rotated"), ("Euclidean", "euclidean")):
            lam = np.asarray(claims["spectrum"][key]["eigenvalues"][:30])
            ax.semilogy(np.arange(1, len(lam) + 1), np.maximum(lam, 1e-16), "o-", ms=3, label=label)
        ax.set_xlabel("index $k$")
        ax.set_ylabel("$|\\lambda_k| / |\\lambda_1|$ of $B$")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        ax.set_title("Fig. 2: MDS spectrum decay, VQ vs Euclidean")
        files += savefig(fig, ctx.out, "fig2_spectrum")
        files += _draw_held_out(plt, ctx, s, held)

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
    out["held_out_kernels"] = {
        setting: {k: _ms(v) for k, v in m.items()} for setting, m in claims["held_out_kernels"].items()
    }
    out["spectrum"] = {k: {"lambda2": v["eigenvalues"][1], "lambda3": v["eigenvalues"][2],
                           "effective_rank": v["effective_rank"], "k90": v["k90"]}
                       for k, v in claims["spectrum"].items()}
    return out


def report_lines(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines of the summary (printed, and pasted into REPRODUCTION.md)."""
    out = []
    for group, items in summary.items():
        if group in ("spectrum", "held_out_kernels"):
            continue
        for k, v in items.items():
            out.append(f"{group:<38} {k:<24} {v['mean']:.4f} +- {v['std']:.4f} (n={v['n']})")
    for setting, items in summary["held_out_kernels"].items():
        for k, v in items.items():
            out.append(f"held-out kernels, {setting:<20} {k:<36} {v['mean']:.4f} +- {v['std']:.4f} (n={v['n']})")
    for k, v in summary["spectrum"].items():
        out.append(f"{'spectrum':<38} {k:<24} l2/l1={v['lambda2']:.3f} l3/l1={v['lambda3']:.3f} "
                   f"eff.rank={v['effective_rank']:.2f} k90={v['k90']}")
    return out


def _kernel_measures(D: np.ndarray, y: np.ndarray, d_u: np.ndarray, k: int, E: np.ndarray | None = None) -> dict[str, float]:
    """Separability and geometry of one distance matrix on held-out points (see :func:`_held_out_measures`)."""
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    D = np.asarray(D, dtype=np.float64)
    out = {
        "knn_full": loo_knn_accuracy(D, y, k),
        "corr_signal_all_pairs": offdiag_corr(D, d_u),
        "corr_signal_within_class": float(np.corrcoef(D[same], d_u[same])[0, 1]),
    }
    if E is not None:
        out["knn_mds2"] = loo_knn_accuracy(euclidean_sq(E), y, k)
    return out


def _held_out_measures(ctx: Context, s: Settings, paper_nets: list, training: list) -> dict[str, Any]:
    """Train the generalising setting and measure both settings' kernels on held-out points.

    For each setting: held-out accuracy, and on ``n_kernel`` held-out points the LOO k-NN accuracy
    (2-D MDS embedding and full distance) and the correlation of the VQ distance with the distance
    in the signal plane, over all pairs and within each class, against the Euclidean distance of
    the same points. Within-class correlation is what labels cannot explain.
    """
    import vqgeom

    settings_ = {
        "paper": dict(n=s.n, scale=s.scale, loss_tol=s.loss_tol, patience=s.patience, nets=paper_nets),
        "generalising": dict(n=s.gen_n, scale=s.gen_scale, loss_tol=s.gen_loss_tol, patience=s.gen_patience, nets=[]),
    }
    gen = settings_["generalising"]
    Xg, yg = data.high_dim_moons(gen["n"], s.noise, s.data_seed, dim=s.dim, scale=gen["scale"])
    for seed in range(s.seeds):
        net = models.mlp(s.dim, s.width, s.depth, 1, seed=seed)
        r = models.train(net, Xg, yg, "bce", lr=s.lr, max_epochs=s.max_epochs, loss_tol=gen["loss_tol"],
                         patience=gen["patience"], seed=seed, threads=1, progress=ctx.progress,
                         desc=f"fig2 generalising seed {seed}")
        gen["nets"].append(net)
        info = dict(model="generalising", seed=seed, epochs=r.epochs, loss=r.loss, accuracy=r.accuracy,
                    stop_reason=r.stop_reason, seconds=r.seconds)
        models.save_checkpoint(net, ctx.out / f"model_generalising_seed{seed}.pt", meta=info)
        training.append(info)
    claims: dict[str, Any] = {}
    draw: dict[str, Any] = {}
    for name, st in settings_.items():
        Xt, yt = data.high_dim_moons(s.n_test, s.noise, s.data_seed + 1, dim=s.dim, scale=st["scale"])
        Xk, yk = Xt[: s.n_kernel], yt[: s.n_kernel]
        d_u = np.sqrt(euclidean_sq(Xk[:, :2] / st["scale"]))  # distances in the signal plane
        m: dict[str, list[float]] = {"held_out_accuracy": [models.accuracy(net, Xt, yt) for net in st["nets"]]}
        for i, net in enumerate(st["nets"]):
            c = vqgeom.encode(net, Xk)
            E = np.asarray(vqgeom.mds(c, 2).embedding)
            D = np.asarray(vqgeom.pairwise_distances(c))
            for k, v in _kernel_measures(D, yk, d_u, s.knn_k, E).items():
                m.setdefault(f"vq_{k}", []).append(v)
            if i == 0:
                draw[name] = dict(E=E, D=D, y=yk, d_u=d_u, acc=m["held_out_accuracy"][0])
        De = np.sqrt(euclidean_sq(Xk))
        Ee = np.asarray(vqgeom.mds(De**2, 2).embedding)
        for k, v in _kernel_measures(De, yk, d_u, s.knn_k, Ee).items():
            m[f"euclidean_{k}"] = [v]
        m["signal_plane_oracle_knn_full"] = [loo_knn_accuracy(d_u, yk, s.knn_k)]
        claims[name] = m
        if name == "generalising":
            draw["euclidean"] = dict(E=Ee, y=yk)
        ctx.log(f"  {name}: held-out accuracy {np.mean(m['held_out_accuracy']):.3f}; on {s.n_kernel} held-out points "
                f"VQ 5-NN (MDS-2) {np.mean(m['vq_knn_mds2']):.3f}, within-class corr with the signal distance "
                f"{np.mean(m['vq_corr_signal_within_class']):.3f} (Euclidean {m['euclidean_corr_signal_within_class'][0]:.3f})")
    return {"claims": claims, "draw": draw}


def _draw_held_out(plt: Any, ctx: Context, s: Settings, held: dict[str, Any]) -> list:
    """fig2_heldout.png: both settings' VQ-MDS embeddings of held-out points, and distance against signal distance."""
    d = held["draw"]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8), layout="constrained")
    for ax, (key, title) in zip(axes[:2], (("paper", f"paper's setting (n = {s.n}, signal ×{s.scale})"),
                                           ("generalising", f"generalising (n = {s.gen_n}, signal ×{s.gen_scale})"))):
        E, y = d[key]["E"], d[key]["y"]
        class_scatter(ax, E, y, s=10, legend=True)
        ax.set_title(f"VQ-MDS of {len(y)} held-out points,\n{title}; held-out acc. {d[key]['acc']:.2f}", fontsize=10)
        ax.set_xlabel("MDS coordinate 1")
        ax.set_ylabel("MDS coordinate 2")
        ax.margins(0.05)
    E, y = d["euclidean"]["E"], d["euclidean"]["y"]
    class_scatter(axes[2], E, y, s=10, legend=True)
    axes[2].set_title("Euclidean MDS of the same held-out points\n(generalising setting's data)", fontsize=10)
    axes[2].set_xlabel("MDS coordinate 1")
    axes[2].set_ylabel("MDS coordinate 2")
    ax = axes[3]
    for key, color, marker in (("paper", "tab:orange", "o"), ("generalising", "tab:blue", "s")):
        D, y, d_u = d[key]["D"].astype(np.float64), d[key]["y"], d[key]["d_u"]
        same = np.triu((y[:, None] == y[None, :]), 1)
        # binned means of the within-class VQ distance over the signal-plane distance
        bins = np.linspace(0, np.percentile(d_u[same], 99), 16)
        idx = np.digitize(d_u[same], bins)
        xs = [(bins[i - 1] + bins[i]) / 2 for i in range(1, len(bins)) if np.any(idx == i)]
        ys = [D[same][idx == i].mean() / D[same].mean() for i in range(1, len(bins)) if np.any(idx == i)]
        r = np.corrcoef(D[same], d_u[same])[0, 1]
        ax.plot(xs, ys, marker=marker, color=color, label=f"{key} (within-class r = {r:.2f})")
    ax.set_xlabel("distance in the signal plane $\\|u_i - u_j\\|$ (same class)")
    ax.set_ylabel("mean VQ distance / its overall mean")
    ax.set_title("does the VQ distance follow the moons?\n(pairs of the same class, held-out points)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 2 beside a setting where the networks generalise: R$^{{{s.dim}}}$ two moons, "
                 f"ReLU MLP {s.depth} $\\times$ {s.width}, kernels on held-out points")
    return savefig(fig, ctx.out, "fig2_heldout")
