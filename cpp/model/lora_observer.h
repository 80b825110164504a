// The hook through which curvature (K-FAC) and Jacobian code sees each LoRA
// matrix during a backward pass. One backward implementation serves training
// (no observer), K-FAC fitting (an accumulator) and the linearised predictive
// (a Jacobian projector). Per spec section 1, each LoRA matrix is its own
// linear layer:
//   A: input a (d_in),            output gradient g_u = s * B^T g_h (r)
//   B: input v = s * A drop(a) (r), output gradient g_h (d_out)
// so that dL/dA = sum_t g_u,t a_t^T and dL/dB = sum_t g_h,t v_t^T.
#pragma once
#include <cstdint>

namespace bl {

struct LoraMatrixInfo {
  int id = 0;          // dense index over all LoRA matrices of the model (A and B separate)
  int module = 0;      // index of the adapted module (A and B of one module share it)
  bool is_b = false;   // false: LoRA-A, true: LoRA-B
  int d_in = 0;        // columns of this matrix (d_in of the module for A, r for B)
  int d_out = 0;       // rows of this matrix (r for A, d_out of the module for B)
};

class LoraObserver {
 public:
  virtual ~LoraObserver() = default;
  // Called once per LoRA matrix per backward pass, after its gradient inputs
  // are known. x: [B*T x d_in] inputs, g: [B*T x d_out] output gradients,
  // both host-readable on the CPU backend (backend memory in general), rows
  // ordered b*T + t; mask[b*T + t] = 1 for real tokens (nullptr: all real).
  // For the LM head only the last real position is computed: T = 1.
  virtual void observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
                       const uint8_t* mask) = 0;
  // Whether observe() uses matrix `id`. A backward pass without parameter
  // gradients stops below the lowest layer with an observed matrix, so e.g.
  // last-layer Laplace never runs the transformer blocks backward.
  virtual bool observes(int /*id*/) const { return true; }
  // Whether observe() needs every position's inputs, also where the output
  // gradient is zero. K-FAC's input factor (a mean or sum over tokens) does;
  // a Jacobian sum_t g_t x_t^T does not, so a multiple-choice backward may
  // show it the last layer's o_proj and MLP on the answer rows only (T = 1,
  // one row per example), as it does for the LM head.
  virtual bool needs_every_row() const { return true; }
};

}  // namespace bl
