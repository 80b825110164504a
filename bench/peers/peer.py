# The PyTorch peer of `npm run bench -- peers`: given a job file written by
# bench/peers.ts (model dir, PEFT adapter, batches, reference values computed
# by bayeslora), it first checks that it computes the same numbers (logits,
# LoRA gradients and, where given, K-FAC factors and Lambda) and only then
# times a training step (AdamW), a K-FAC fit and a predictive pass. Prints one
# JSON object on stdout. Run with Debian's /usr/bin/python3 (python3-torch).
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from kfac_hooks import fit_kfac, posterior, predictive, probit, lora_params
from llama_lora import load_model
from safetensors_io import read_safetensors


def to_batch(j):
    B, T, C = j["B"], j["T"], j["C"]
    return {
        "ids": torch.tensor(j["ids"], dtype=torch.long).view(B, T),
        "mask": torch.tensor(j["mask"], dtype=torch.long).view(B, T),
        "last": torch.tensor(j["last"], dtype=torch.long),
        "rows": torch.tensor(j["rows"], dtype=torch.long).view(B, C),
        "labels": torch.tensor(j["labels"], dtype=torch.long),
    }


def rel_err(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def parity(model, batches, ref, job):
    """Relative max errors of every reference quantity; ok when all are below the tolerance."""
    tol = job["tolerance"]
    b = batches[0]
    errs = {}
    model.zero_grad(set_to_none=True)
    logits = model(b["ids"], b["mask"], b["last"], b["rows"])
    errs["logits"] = rel_err(logits.detach(), ref["logits"])
    F.cross_entropy(logits, b["labels"]).backward()
    g_errs = []
    for path, mod in model.lora_modules():
        for side in ("lora_A", "lora_B"):
            key = f"grad.{path}.{side}"
            g_errs.append((rel_err(getattr(mod, side).weight.grad, ref[key]), key))
    errs["lora_grads"] = max(g_errs)[0]
    errs["lora_grads_worst"] = max(g_errs)[1]
    model.zero_grad(set_to_none=True)
    if "lambda" in ref:
        fit = job["fit"]
        layers = fit_kfac(model, batches, fit["threshold"], fit["n_kfac"])
        f_errs = []
        for name, st in layers.items():
            for side in ("A", "G"):
                f_errs.append((rel_err(st[side].dense(), ref[f"factor.{name}.{side}"]), f"{name}.{side}"))
                if st["count"] != job["parity"]["count"]:
                    f_errs.append((float("inf"), f"{name}.count"))
        errs["kfac_factors"] = max(f_errs)[0]
        errs["kfac_factors_worst"] = max(f_errs)[1]
        errs["lowrank_factors"] = sum(st[s].lowrank for st in layers.values() for s in ("A", "G"))
        post = posterior(layers, fit["delta"])
        mu, lam = predictive(model, post, b)
        errs["lambda"] = rel_err(lam, ref["lambda"])
        errs["probit_probs"] = rel_err(probit(mu, lam), ref["probs"])
    checked = [k for k, v in errs.items() if isinstance(v, float)]
    return {"ok": all(errs[k] <= tol for k in checked), "tolerance": tol, "rel_max_err": errs}


def timed(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median": statistics.median(ts), "min": min(ts), "max": max(ts), "n": len(ts), "all": ts}


def main():
    job = json.load(open(sys.argv[1]))
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    model = load_model(job["model_dir"], job["lora"], job["adapter"])
    data = json.load(open(job["data"]))
    batches = [to_batch(b) for b in data["batches"]]
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "parallel": torch.__config__.parallel_info()}
    ref = read_safetensors(job["parity"]["ref"])
    out["parity"] = parity(model, batches, ref, job)
    if not out["parity"]["ok"] or job.get("parity_only"):
        print(json.dumps(out))
        return
    fit = job["fit"]
    fit_batches = batches[: fit["batches"]]
    t = {}
    state = {}

    def do_fit():
        layers = fit_kfac(model, fit_batches, fit["threshold"], fit["n_kfac"])
        state["post"] = posterior(layers, fit["delta"])

    t["fit"] = timed(do_fit, job["repeats"]["fit"], warmup=0)
    pb = batches[0]

    def do_predict():
        mu, lam = predictive(model, state["post"], pb)
        probit(mu, lam)

    t["predict"] = timed(do_predict, job["repeats"]["predict"])
    opt = torch.optim.AdamW(lora_params(model).values(), lr=1e-4, weight_decay=0.0, eps=1e-8)
    tb = batches[0]

    def do_train():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tb["ids"], tb["mask"], tb["last"], tb["rows"]), tb["labels"])
        loss.backward()
        opt.step()

    t["train"] = timed(do_train, job["repeats"]["train"])
    out["times"] = t
    print(json.dumps(out))


if __name__ == "__main__":
    main()
