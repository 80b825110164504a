# The PyTorch peer's model: a LLaMA-family decoder written as a PyTorch user
# would (nn.Module blocks, RMSNorm, rotary embeddings, grouped-query attention,
# SwiGLU MLP) with LoRA as two nn.Linear layers and a scale, loaded from the
# same Hugging Face safetensors checkpoint as bayeslora. The multiple-choice
# head takes the final hidden state at each example's last real position and
# keeps the C answer rows of the LM-head logits (SPEC-laplace.md section 2).
import json
import math
import os

import torch
from torch import nn
import torch.nn.functional as F

from safetensors_io import read_safetensors


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """Frozen base nn.Linear plus s * B(A x). The scale sits between A and B so
    that forward/backward hooks on lora_B see the spec's input v = s A x and
    output gradient g_h (and hooks on lora_A see x and s B^T g_h)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x) * self.scaling)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.h = cfg["num_attention_heads"]
        self.hkv = cfg.get("num_key_value_heads", self.h)
        self.hd = cfg.get("head_dim") or d // self.h
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.hkv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.hkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False)

    def forward(self, x, cos, sin, attn_bias):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.hkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.hkv != self.h:  # grouped-query attention: share each K/V head
            rep = self.h // self.hkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.hd) + attn_bias
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, i = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg.get("rms_norm_eps", 1e-5)
        self.input_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, attn_bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg.get("rms_norm_eps", 1e-5))


class LlamaForMultipleChoice(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def rope(self, T):
        t = torch.arange(T, dtype=torch.float64)
        freqs = torch.outer(t, self.inv_freq.double())
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().float(), emb.sin().float()

    def forward(self, ids, mask, last, rows):
        """Class logits [B, C]: LM-head rows `rows` [B, C] at position `last` [B]."""
        B, T = ids.shape
        cos, sin = self.rope(T)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        allowed = causal[None, None] & mask.bool()[:, None, None, :]
        attn_bias = torch.zeros(B, 1, T, T).masked_fill(~allowed, float("-inf"))
        x = self.model.embed_tokens(ids)
        for blk in self.model.layers:
            x = blk(x, cos, sin, attn_bias)
        h = self.model.norm(x[torch.arange(B), last])  # only the positions that are scored
        return self.lm_head(h).gather(1, rows)

    def add_lora(self, targets, r, alpha):
        """Replace every target nn.Linear (matched by its attribute name) by a LoraLinear."""
        for name, mod in list(self.named_modules()):
            for child_name, child in list(mod.named_children()):
                if child_name in targets and isinstance(child, nn.Linear):
                    setattr(mod, child_name, LoraLinear(child, r, alpha))
        for n, p in self.named_parameters():
            p.requires_grad_(".lora_A." in n or ".lora_B." in n)

    def lora_modules(self):
        """[(path, LoraLinear)] in model order, paths as in the checkpoint (e.g. model.layers.0.self_attn.q_proj)."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, LoraLinear)]


def load_model(model_dir, lora=None, adapter_file=None):
    """Model from config.json + model.safetensors; optional LoRA {targets, r, alpha} with PEFT adapter weights."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    m = LlamaForMultipleChoice(cfg)
    sd = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if cfg.get("tie_word_embeddings"):
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"checkpoint mismatch: missing {missing}, unexpected {unexpected}")
    if lora:
        m.add_lora(lora["targets"], lora["r"], lora["alpha"])
        if adapter_file:
            ad = read_safetensors(adapter_file)
            for path, mod in m.lora_modules():
                with torch.no_grad():
                    mod.lora_A.weight.copy_(ad[f"base_model.model.{path}.lora_A.weight"])
                    mod.lora_B.weight.copy_(ad[f"base_model.model.{path}.lora_B.weight"])
    return m
