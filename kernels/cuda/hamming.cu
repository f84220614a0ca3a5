// Packed-Hamming VQ distances for the CuPy backend (compiled at first use by
// vqgeom.kernels.cuda.loader through cupy.RawModule; compile-checked by nvcc in CI).
//
// Codes layout: row-major (N, W) uint32 words, each layer starts on a fresh word and
// padding bits are zero, so d(i, j) = sum_w wword[w] * popc(X[i, w] ^ Y[j, w]) with
// wword[w] the weight of the layer that owns word w (unweighted: a plain popcount sum).
//
// One 16 x 16 thread block computes a 16 x 16 output tile; word chunks of both row
// blocks are staged in shared memory (rows padded by one word against bank conflicts).
// Symmetric mode (sym != 0, Y == X, m == n): blocks below the diagonal return at once,
// the others write their tile and its transpose.

#define VQ_TILE 16
#define VQ_WCHUNK 16

template <typename OutT, bool WEIGHTED>
__device__ __forceinline__ void vq_hamming_body(const unsigned int* __restrict__ X,
                                                const unsigned int* __restrict__ Y,
                                                OutT* __restrict__ out,
                                                const double* __restrict__ wword,
                                                long long n, long long m, int nw, int sym) {
    const int bi = blockIdx.y;
    const int bj = blockIdx.x;
    if (sym && bj < bi) return;
    __shared__ unsigned int sx[VQ_TILE][VQ_WCHUNK + 1];
    __shared__ unsigned int sy[VQ_TILE][VQ_WCHUNK + 1];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const long long i = (long long)bi * VQ_TILE + ty;
    const long long j = (long long)bj * VQ_TILE + tx;
    const long long ri = (long long)bi * VQ_TILE + ty;  // row this thread stages from X
    const long long rj = (long long)bj * VQ_TILE + ty;  // row this thread stages from Y
    unsigned int iacc = 0u;
    double dacc = 0.0;
    for (int w0 = 0; w0 < nw; w0 += VQ_WCHUNK) {
        const int w = w0 + tx;
        sx[ty][tx] = (ri < n && w < nw) ? X[ri * nw + w] : 0u;
        sy[ty][tx] = (rj < m && w < nw) ? Y[rj * nw + w] : 0u;
        __syncthreads();
        const int wend = min(VQ_WCHUNK, nw - w0);
        for (int k = 0; k < wend; ++k) {
            const int c = __popc(sx[ty][k] ^ sy[tx][k]);
            if (WEIGHTED) {
                dacc += wword[w0 + k] * (double)c;
            } else {
                iacc += (unsigned int)c;
            }
        }
        __syncthreads();
    }
    if (i < n && j < m) {
        const OutT v = WEIGHTED ? (OutT)dacc : (OutT)iacc;
        out[i * m + j] = v;
        if (sym && bi != bj) out[j * m + i] = v;
    }
}

#define VQ_DEFINE(NAME, T)                                                                      \
    extern "C" __global__ void vq_hamming_##NAME(const unsigned int* __restrict__ X,           \
                                                 const unsigned int* __restrict__ Y,           \
                                                 T* __restrict__ out,                           \
                                                 const double* __restrict__ wword,              \
                                                 long long n, long long m, int nw, int sym,     \
                                                 int weighted) {                                \
        if (weighted) {                                                                         \
            vq_hamming_body<T, true>(X, Y, out, wword, n, m, nw, sym);                          \
        } else {                                                                                \
            vq_hamming_body<T, false>(X, Y, out, wword, n, m, nw, sym);                         \
        }                                                                                       \
    }

VQ_DEFINE(uint8, unsigned char)
VQ_DEFINE(int16, short)
VQ_DEFINE(uint16, unsigned short)
VQ_DEFINE(int32, int)
VQ_DEFINE(int64, long long)
VQ_DEFINE(float32, float)
VQ_DEFINE(float64, double)
