"""Centered kernel alignment (Kornblith et al., ICML 2019) between two sets of representations.

Linear CKA is computed exactly in feature space, in float64, from statistics accumulated over
batches, so memory is O(d^2) in the feature widths and never O(n^2) in the number of crystals:

    CKA(X, Y) = ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F),   Xc = X - mean(X)

The debiased estimator replaces each HSIC with the unbiased HSIC of Song et al. (JMLR 2012) on
the linear kernels K = XX', L = YY' (zero diagonals, U-statistic), also expanded in feature
space. RBF-kernel CKA needs the n x n Gram matrices and is limited to ``RBF_MAX_N`` samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RBF_MAX_N = 6000  # n x n float64 Gram matrices: two of them at 6,000 samples take ~0.6 GB


class CKAError(ValueError):
    """CKA is undefined for these inputs (e.g. constant features); the message says which."""


@dataclass
class CKAAccumulator:
    """Streams two groups of named representations (A and B) batch by batch.

    For every stage of A and of B it keeps sums, norms and all cross products, so that after the
    last batch every CKA value between a stage of A and a stage of B (and within A, within B)
    is exact. Memory: (sum of widths)^2 float64 numbers.
    """

    widths: dict[str, int] = field(default_factory=dict)  # "A:graph" -> d
    n: int = 0
    _names: list[str] = field(default_factory=list)
    _offsets: dict[str, slice] = field(default_factory=dict)
    _zz: np.ndarray | None = None  # Z'Z over all stages, Z = [stages of A | stages of B]
    _z: np.ndarray | None = None  # sum of rows of Z
    _zq: np.ndarray | None = None  # Z' Q, Q = per-stage squared row norms (n x stages)
    _qq: np.ndarray | None = None  # Q' Q
    _q: np.ndarray | None = None  # sum of Q

    def update(self, stages: dict[str, np.ndarray]) -> None:
        """Add one batch: ``stages`` maps ``"A:name"``/``"B:name"`` to (batch, width) arrays."""
        if self._zz is None:
            self._names = list(stages)
            start = 0
            for name in self._names:
                d = stages[name].shape[1]
                self.widths[name] = d
                self._offsets[name] = slice(start, start + d)
                start += d
            k = len(self._names)
            self._zz, self._z = np.zeros((start, start)), np.zeros(start)
            self._zq, self._qq, self._q = np.zeros((start, k)), np.zeros((k, k)), np.zeros(k)
        if list(stages) != self._names:
            raise CKAError(f"stages changed between batches: {list(stages)} != {self._names}")
        z = np.concatenate([np.asarray(stages[s], dtype=np.float64) for s in self._names], axis=1)
        q = np.stack(
            [
                np.einsum("ij,ij->i", z[:, self._offsets[s]], z[:, self._offsets[s]])
                for s in self._names
            ],
            1,
        )
        self._zz += z.T @ z
        self._z += z.sum(0)
        self._zq += z.T @ q
        self._qq += q.T @ q
        self._q += q.sum(0)
        self.n += z.shape[0]

    def _blocks(self, a: str, b: str):
        sa, sb = self._offsets[a], self._offsets[b]
        ia, ib = self._names.index(a), self._names.index(b)
        return sa, sb, ia, ib

    def _centered_cross(self, a: str, b: str) -> np.ndarray:
        sa, sb, _, _ = self._blocks(a, b)
        return self._zz[sa, sb] - np.outer(self._z[sa], self._z[sb]) / self.n

    def _hsic_unbiased(self, a: str, b: str) -> float:
        """Unbiased HSIC (Song et al. 2012) of the linear kernels of stages a and b, times n(n-3)."""
        n = self.n
        sa, sb, ia, ib = self._blocks(a, b)
        xy = self._zz[sa, sb]
        tr_kl = float((xy**2).sum()) - float(self._qq[ia, ib])  # sum_{i != j} K_ij L_ij
        sx, sy = self._z[sa], self._z[sb]
        k1 = float(sx @ sx) - float(self._q[ia])  # 1' K~ 1
        l1 = float(sy @ sy) - float(self._q[ib])
        # 1' K~ L~ 1 = sum_i (x_i.Sx - |x_i|^2)(y_i.Sy - |y_i|^2)
        kl1 = (
            float(sx @ xy @ sy)
            - float(sx @ self._zq[sa, ib])
            - float(sy @ self._zq[sb, ia])
            + float(self._qq[ia, ib])
        )
        return tr_kl + k1 * l1 / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)

    def cka(self, a: str, b: str, debiased: bool = False) -> float:
        """CKA between accumulated stages ``a`` and ``b`` (names as given to :meth:`update`)."""
        if debiased and self.n < 4:
            raise CKAError(f"debiased CKA needs at least 4 samples, got {self.n}")
        for s in (a, b):
            norm = (
                self._hsic_unbiased(s, s)
                if debiased
                else float((self._centered_cross(s, s) ** 2).sum())
            )
            if not norm > 1e-12 * max(
                1.0, float(np.abs(self._zz[self._offsets[s], self._offsets[s]]).max())
            ):
                raise CKAError(
                    f"stage {s!r} has (numerically) constant features over these {self.n} samples: CKA is undefined"
                )
        if debiased:
            num = self._hsic_unbiased(a, b)
            den = np.sqrt(self._hsic_unbiased(a, a) * self._hsic_unbiased(b, b))
        else:
            num = float((self._centered_cross(a, b) ** 2).sum())
            den = np.sqrt(
                float((self._centered_cross(a, a) ** 2).sum())
                * float((self._centered_cross(b, b) ** 2).sum())
            )
        return float(num / den)


def linear_cka(
    x: np.ndarray, y: np.ndarray, debiased: bool = False, batch_size: int = 1024
) -> float:
    """Exact linear CKA of two (n, d) arrays, streamed in feature space (float64)."""
    if x.shape[0] != y.shape[0]:
        raise CKAError(f"sample counts differ: {x.shape[0]} != {y.shape[0]} (nothing is truncated)")
    acc = CKAAccumulator()
    for start in range(0, x.shape[0], batch_size):
        acc.update({"x": x[start : start + batch_size], "y": y[start : start + batch_size]})
    return acc.cka("x", "y", debiased=debiased)


# ------------------------------------------------------------------------ Gram-matrix forms
def _center_gram(k: np.ndarray, unbiased: bool) -> np.ndarray:
    k = k.copy()
    n = k.shape[0]
    if unbiased:  # U-centering (Szekely & Rizzo 2014), as in Kornblith et al.'s reference code
        np.fill_diagonal(k, 0.0)
        means = k.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        k -= means[:, None]
        k -= means[None, :]
        np.fill_diagonal(k, 0.0)
    else:
        means = k.mean(0)
        k -= means[:, None]
        k -= means[None, :]
        k += means.mean()
    return k


def gram_cka(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:  # noqa: E741
    """CKA from two n x n Gram matrices (O(n^2) memory): the reference the feature-space form is
    tested against, and the route for non-linear kernels."""
    kc, lc = _center_gram(k, debiased), _center_gram(l, debiased)
    num = float((kc * lc).sum())
    den = np.sqrt(float((kc * kc).sum()) * float((lc * lc).sum()))
    if not den > 0:
        raise CKAError("a Gram matrix is constant after centering: CKA is undefined")
    return num / den


def rbf_gram(x: np.ndarray, sigma_frac: float = 0.8) -> np.ndarray:
    """RBF Gram matrix with bandwidth ``sigma_frac`` x median pairwise distance."""
    x = np.asarray(x, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    median = np.median(d2[np.triu_indices_from(d2, k=1)])
    if not median > 0:
        raise CKAError("all samples coincide: RBF CKA is undefined")
    return np.exp(-d2 / (2.0 * sigma_frac**2 * median))


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma_frac: float = 0.8, debiased: bool = False) -> float:
    """RBF-kernel CKA; refuses more than ``RBF_MAX_N`` samples (n x n memory)."""
    if x.shape[0] != y.shape[0]:
        raise CKAError(f"sample counts differ: {x.shape[0]} != {y.shape[0]}")
    if x.shape[0] > RBF_MAX_N:
        raise CKAError(f"RBF CKA needs n x n Gram matrices; n={x.shape[0]} > RBF_MAX_N={RBF_MAX_N}")
    return gram_cka(rbf_gram(x, sigma_frac), rbf_gram(y, sigma_frac), debiased)
