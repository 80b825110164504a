# The PyTorch peer's Laplace-LoRA, written the way the Python Laplace-LoRA code
# does it: forward hooks record each LoRA nn.Linear's input, full backward
# hooks its output gradient, and per-layer Kronecker factors are accumulated
# from them; factor sides larger than a threshold are kept as rank-nKfac
# factors by an incremental SVD. Conventions follow SPEC-laplace.md
# (sections 3-6, 8): exact Fisher with C backward passes seeded by
# sqrt(p_c) d log p_c / df, 'reduce' token handling (mean input, summed
# gradient per example), raw sums and a count Z, eigen form of P_l, and the
# linearised predictive Lambda from functorch Jacobians.
import math

import torch
from functorch import jacrev
from torch.nn.utils.stateless import functional_call


class Factor:
    """S = sum of outer products of columns; dense, or L (d x k) with L L^T ~= S."""

    def __init__(self, d, lowrank, k):
        self.d, self.lowrank, self.k = d, lowrank, k
        self.S = None if lowrank else torch.zeros(d, d, dtype=torch.float64)
        self.L = torch.zeros(d, 0, dtype=torch.float64) if lowrank else None

    def add(self, X):
        """X: [m, d] rows (float32) whose outer products are added."""
        X = X.double()
        if not self.lowrank:
            self.S += X.T @ X
            return
        M = torch.cat([self.L, X.T], dim=1)  # d x (k + m)
        w, V = torch.linalg.eigh(M.T @ M)  # Gram of [L | X], float64
        top = torch.argsort(w, descending=True)[: self.k]
        self.L = M @ V[:, top]  # = U_k Sigma_k

    def dense(self):
        return self.S if not self.lowrank else self.L @ self.L.T

    def eigen(self):
        if not self.lowrank:
            lam, U = torch.linalg.eigh(self.S)
            return U, lam.clamp_min(0)
        U, s, _ = torch.linalg.svd(self.L, full_matrices=False)
        return U, s * s


class KfacHooks:
    """Forward/backward hooks on every LoRA lora_A / lora_B nn.Linear of a model."""

    def __init__(self, model, threshold=512, n_kfac=10):
        self.layers = {}
        self.handles = []
        self.mask = None
        self.record_inputs = True
        for path, mod in model.lora_modules():
            for side in ("lora_A", "lora_B"):
                lin = getattr(mod, side)
                name = f"{path}.{side}"
                d_in, d_out = lin.in_features, lin.out_features
                st = {
                    "A": Factor(d_in, d_in > threshold, n_kfac),
                    "G": Factor(d_out, d_out > threshold, n_kfac),
                    "count": 0,
                    "x": None,
                }
                self.layers[name] = st
                self.handles.append(lin.register_forward_hook(self._fwd(st)))
                self.handles.append(lin.register_full_backward_hook(self._bwd(st)))

    def _tokens(self, t):
        """[B, T, d] or [B, d] -> [B, T, d] with the token mask, or [B, 1, d] (LM head at the last position)."""
        if t.dim() == 2:
            return t[:, None, :], None
        return t, self.mask

    def _fwd(self, st):
        def hook(mod, inp, out):
            if not self.record_inputs:
                return
            x, m = self._tokens(inp[0].detach())
            if m is None:
                xm = x.mean(1)
            else:
                mf = m.to(x.dtype)[..., None]
                xm = (x * mf).sum(1) / mf.sum(1)
            st["A"].add(xm)  # reduce: one mean input per example
            st["count"] += x.shape[0]

        return hook

    def _bwd(self, st):
        def hook(mod, grad_in, grad_out):
            g, m = self._tokens(grad_out[0].detach())
            if m is not None:
                g = g * m.to(g.dtype)[..., None]
            st["G"].add(g.sum(1))  # reduce: summed output gradient per example

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def fit_kfac(model, batches, threshold=512, n_kfac=10):
    """Exact-Fisher K-FAC over `batches` (dicts of tensors); returns the hooks' per-layer state."""
    hooks = KfacHooks(model, threshold, n_kfac)
    try:
        for b in batches:
            hooks.mask = b["mask"]
            hooks.record_inputs = True
            f = model(b["ids"], b["mask"], b["last"], b["rows"])
            p = torch.softmax(f.detach().double(), dim=-1)
            C = f.shape[1]
            for c in range(C):
                # seed row = sqrt(p_c) * d log p_c / df = sqrt(p_c) (e_c - p)
                seed = (torch.eye(C, dtype=torch.float64)[c] - p) * p[:, c : c + 1].sqrt()
                model.zero_grad(set_to_none=True)
                f.backward(seed.float(), retain_graph=c < C - 1)
    finally:
        hooks.remove()
    return hooks.layers


def posterior(layers, delta):
    """Eigen form of P_l = SA (x) SG / Z + delta I per layer."""
    post = {}
    for name, st in layers.items():
        Ua, la = st["A"].eigen()
        Ug, lg = st["G"].eigen()
        post[name] = {"Ua": Ua, "Ug": Ug, "w": 1.0 / (torch.outer(lg, la) / st["count"] + delta) - 1.0 / delta, "delta": delta}
    return post


def lora_params(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def jacobians(model, b):
    """Per-example Jacobians of the class logits w.r.t. every LoRA matrix: {param name: [B, C, out, in]}."""
    params = {k: v.detach() for k, v in lora_params(model).items()}

    def f(ps):
        return functional_call(model, ps, (b["ids"], b["mask"], b["last"], b["rows"]))

    with torch.no_grad():
        mu = f(params)
    return mu, jacrev(f)(params)


def predictive(model, post, b):
    """Mean logits mu [B, C] and Lambda [B, C, C] (SPEC section 6 projections), float64."""
    mu, J = jacobians(model, b)
    Bn, C = mu.shape
    lam = torch.zeros(Bn, C, C, dtype=torch.float64)
    for name, st in post.items():
        Jl = J[name + ".weight"].double()  # [B, C, out, in]
        lam += torch.einsum("bcoi,bdoi->bcd", Jl, Jl) / st["delta"]
        P = st["Ug"].T @ Jl @ st["Ua"]  # [B, C, kg, ka]
        lam += torch.einsum("bcij,ij,bdij->bcd", P, st["w"], P)
    return mu, lam


def probit(mu, lam):
    kappa = 1.0 / torch.sqrt(1.0 + math.pi / 8.0 * torch.diagonal(lam, dim1=-2, dim2=-1))
    return torch.softmax(mu.double() * kappa, dim=-1)
