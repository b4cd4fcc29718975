"""The CUDA C source of every custom kernel, templated on the float type T (float or double).

Every kernel indexes raw memory: its array arguments must be C-contiguous (the backend checks).
Elementwise kernels run one thread per element over ``n`` elements; the multi-tensor kernels walk
all parameters at once through a table of device pointers and each tensor's start in the
concatenation (``offsets``, n_tensors + 1 entries), with a grid-stride loop.
"""

from __future__ import annotations

THREADS = 256  # threads per block
MAX_BLOCKS = 1024  # grid-stride kernels: at most this many blocks
NVRTC_OPTIONS = ("--std=c++14", "--fmad=false")

SOURCE = r"""
template <typename T> __device__ T gate(T x, int hard) {
    return hard ? min(max(T(0.2) * x + T(0.5), T(0)), T(1)) : T(1) / (T(1) + exp(-x));
}
template <typename T> __device__ T gate_grad(T y, int hard) {
    return hard ? ((y > T(0) && y < T(1)) ? T(0.2) : T(0)) : y * (T(1) - y);
}

// One LSTM step, Keras gate order (i, f, g, o); gates (B, 4U) pre-activations in, activations out.
// masked != 0: a row b with keep[b] false is padding and carries the state over (c_out = c_prev,
// h_out = h_prev); with masked == 0, keep and h_prev are not read.
template <typename T>
__global__ void lstm_cell_forward(T* gates, const T* c_prev, const T* h_prev, const bool* keep, int masked,
                                  T* c_out, T* h_out, long long n, int u, int hard) {
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= n) return;
    const long long b = e / u, j = e % u;
    T* row = gates + b * 4 * u;
    const T in_ = gate<T>(row[j], hard), f = gate<T>(row[u + j], hard);
    const T g = tanh(row[2 * u + j]), o = gate<T>(row[3 * u + j], hard);
    row[j] = in_; row[u + j] = f; row[2 * u + j] = g; row[3 * u + j] = o;
    if (masked && !keep[b]) {
        c_out[e] = c_prev[e];
        h_out[e] = h_prev[e];
        return;
    }
    const T c = f * c_prev[e] + in_ * g;
    c_out[e] = c;
    h_out[e] = o * tanh(c);
}

// Backward of lstm_cell_forward: dgates (B, 4U) and dc_prev (B, U) from dh + dy (has_dy: dy is read) and dc.
// masked != 0: a padding row (keep[b] false) passes dh + dy and dc straight through: dgates 0, dc_prev = dc,
// and dh_pass (B, U) gets dh + dy there, 0 elsewhere (the recurrent product is then added into it);
// with masked == 0, keep and dh_pass are not touched.
template <typename T>
__global__ void lstm_cell_backward(const T* dh, const T* dy, int has_dy, const T* dc, const T* gates,
                                   const T* c_prev, const T* c, const bool* keep, int masked,
                                   T* dgates, T* dc_prev, T* dh_pass, long long n, int u, int hard) {
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= n) return;
    const long long b = e / u, j = e % u, base = b * 4 * u;
    const T dh_total = has_dy ? dh[e] + dy[e] : dh[e];
    if (masked) {
        if (!keep[b]) {
            dgates[base + j] = T(0); dgates[base + u + j] = T(0);
            dgates[base + 2 * u + j] = T(0); dgates[base + 3 * u + j] = T(0);
            dc_prev[e] = dc[e];
            dh_pass[e] = dh_total;
            return;
        }
        dh_pass[e] = T(0);
    }
    const T in_ = gates[base + j], f = gates[base + u + j];
    const T g = gates[base + 2 * u + j], o = gates[base + 3 * u + j];
    const T tc = tanh(c[e]);
    const T dc_total = dc[e] + dh_total * o * (T(1) - tc * tc);
    dgates[base + j] = dc_total * g * gate_grad<T>(in_, hard);
    dgates[base + u + j] = dc_total * c_prev[e] * gate_grad<T>(f, hard);
    dgates[base + 2 * u + j] = dc_total * in_ * (T(1) - g * g);
    dgates[base + 3 * u + j] = dh_total * tc * gate_grad<T>(o, hard);
    dc_prev[e] = dc_total * f;
}

// p (N, V) holds exp(logits - max); out: scale[r] * (p / total[r] - onehot(targets[r])).
template <typename T>
__global__ void softmax_xent_grad(T* p, const T* total, const T* scale, const long long* targets,
                                  long long n, long long v) {
    const long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (e >= n) return;
    const long long r = e / v;
    p[e] = (p[e] / total[r] - ((e % v) == targets[r] ? T(1) : T(0))) * scale[r];
}

// The tensor holding element e of the concatenation, and e's index inside it.
__device__ int tensor_of(long long e, const long long* offsets, int n_tensors) {
    int lo = 0, hi = n_tensors;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (offsets[mid] <= e) lo = mid; else hi = mid;
    }
    return lo;
}

// Each thread's sum of squares over its grid-stride share of every tensor, in double.
template <typename T>
__global__ void sum_squares_partials(const unsigned long long* tensors, const long long* offsets,
                                     int n_tensors, double* partials) {
    const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long stride = (long long)blockDim.x * gridDim.x, total = offsets[n_tensors];
    double acc = 0.0;
    for (long long e = first; e < total; e += stride) {
        const int k = tensor_of(e, offsets, n_tensors);
        const double x = (double)((const T*)tensors[k])[e - offsets[k]];
        acc += x * x;
    }
    partials[first] = acc;
}

// g *= clipnorm / norm in every tensor when norm > clipnorm (Keras global_clipnorm).
template <typename T>
__global__ void scale_by_norm(const unsigned long long* tensors, const long long* offsets, int n_tensors,
                              const double* norm, double clipnorm) {
    if (!(*norm > clipnorm)) return;
    const T scale = (T)(clipnorm / *norm);
    const long long stride = (long long)blockDim.x * gridDim.x, total = offsets[n_tensors];
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += stride) {
        const int k = tensor_of(e, offsets, n_tensors);
        ((T*)tensors[k])[e - offsets[k]] *= scale;
    }
}

// Every tensor set to zero (a model's zero_grad in one launch).
template <typename T>
__global__ void zero_all(const unsigned long long* tensors, const long long* offsets, int n_tensors) {
    const long long stride = (long long)blockDim.x * gridDim.x, total = offsets[n_tensors];
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += stride) {
        const int k = tensor_of(e, offsets, n_tensors);
        ((T*)tensors[k])[e - offsets[k]] = T(0);
    }
}

// Adam over every parameter at once (Keras form; lr_t carries the bias corrections).
// tables: 4 rows of n_tensors pointers, params, grads, m, v.
template <typename T>
__global__ void adam_update_all(const unsigned long long* tables, const long long* offsets, int n_tensors,
                                T lr_t, T one_minus_beta_1, T one_minus_beta_2, T epsilon) {
    const long long stride = (long long)blockDim.x * gridDim.x, total = offsets[n_tensors];
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += stride) {
        const int k = tensor_of(e, offsets, n_tensors);
        const long long i = e - offsets[k];
        T* p = (T*)tables[k];
        const T g = ((const T*)tables[n_tensors + k])[i];
        T* m = (T*)tables[2 * n_tensors + k];
        T* v = (T*)tables[3 * n_tensors + k];
        m[i] += (g - m[i]) * one_minus_beta_1;
        v[i] += (g * g - v[i]) * one_minus_beta_2;
        p[i] -= lr_t * m[i] / (sqrt(v[i]) + epsilon);
    }
}
"""

KERNELS = (
    "lstm_cell_forward",
    "lstm_cell_backward",
    "softmax_xent_grad",
    "sum_squares_partials",
    "scale_by_norm",
    "zero_all",
    "adam_update_all",
)


def name_expressions() -> list[str]:
    """Every kernel for float and double, as ``RawModule(name_expressions=...)`` takes them."""
    return [f"{k}<{t}>" for k in KERNELS for t in ("float", "double")]


def grid_for(n: int, *, stride_loop: bool = False) -> int:
    """Blocks of THREADS threads covering n elements (capped for grid-stride kernels)."""
    blocks = max(1, -(-int(n) // THREADS))
    return min(blocks, MAX_BLOCKS) if stride_loop else blocks
