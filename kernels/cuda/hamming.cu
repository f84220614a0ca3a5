// Packed-Hamming VQ distances for the CuPy backend (compiled at first use by
// vqgeom.kernels.cuda.loader through cupy.RawModule; compile-checked by nvcc in CI).
//
// Codes layout: row-major (N, W) uint32 words, each layer starts on a fresh word and
// padding bits are zero, so d(i, j) = sum_w wword[w] * popc(X[i, w] ^ Y[j, w]) with
// wword[w] the weight of the layer that owns word w (unweighted: a plain popcount sum).
//
// One 16 x 16 thread block computes 16 x 16 output tiles; word chunks of both row
// blocks are staged in shared memory (rows padded by one word against bank conflicts).
// Symmetric mode (sym != 0, Y == X, m == n): tiles below the diagonal are skipped, the
// others written with their transpose. This plain popcount kernel is the fallback of the
// cupy backend; cupy arrays go to the Triton kernels through DLPack when Triton is there.

#define VQ_TILE 16
#define VQ_WCHUNK 16

template <typename OutT, bool WEIGHTED>
__device__ __forceinline__ void vq_hamming_tile(const unsigned int* __restrict__ X,
                                                const unsigned int* __restrict__ Y,
                                                OutT* __restrict__ out,
                                                const double* __restrict__ wword,
                                                long long n, long long m, int nw, int sym,
                                                long long bi, long long bj) {
    __shared__ unsigned int sx[VQ_TILE][VQ_WCHUNK + 1];
    __shared__ unsigned int sy[VQ_TILE][VQ_WCHUNK + 1];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const long long i = bi * VQ_TILE + ty;
    const long long j = bj * VQ_TILE + tx;
    const long long ri = bi * VQ_TILE + ty;  // row this thread stages from X
    const long long rj = bj * VQ_TILE + ty;  // row this thread stages from Y
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

// Grid: x = column tiles (up to 2^31 - 1), y = row tiles, at most 65,535: each block
// loops over row tiles blockIdx.y, + gridDim.y, ... (the loop is uniform per block).
template <typename OutT, bool WEIGHTED>
__device__ __forceinline__ void vq_hamming_body(const unsigned int* __restrict__ X,
                                                const unsigned int* __restrict__ Y,
                                                OutT* __restrict__ out,
                                                const double* __restrict__ wword,
                                                long long n, long long m, int nw, int sym) {
    const long long bj = blockIdx.x;
    const long long row_tiles = (n + VQ_TILE - 1) / VQ_TILE;
    for (long long bi = blockIdx.y; bi < row_tiles; bi += gridDim.y) {
        if (sym && bj < bi) continue;
        vq_hamming_tile<OutT, WEIGHTED>(X, Y, out, wword, n, m, nw, sym, bi, bj);
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

// ---------------------------------------------------------------------------------------
// Binary tensor-core kernel for long codes (sm_80 and newer; loader method="bmma").
//
// Per layer l with word range [loff[l], loff[l+1]):
//   H_l(i, j) = P_l(x_i) + P_l(y_j) - 2 popc(x_i AND y_j)
// where P_l is the layer's row popcount (vq_bmma_rowpop) and the AND-popcount sums come
// from mma.sync.aligned.m8n8k128.row.col.s32.b1.b1.s32.and.popc: an 8 x 8 tile of
// AND-popcounts over 128 bits (4 words) per instruction. Fragments (PTX ISA, m8n8k128
// .b1): lane = 4 g + t holds word t of the 4-word K slice of A's row g and of B's column
// g; accumulator slot h of lane 4 g + t is element (g, 2 t + h). The bit order inside a
// word does not matter: A and B use the same words, and AND + popc is blind to order.
//
// A block of 4 warps (2 x 2) computes a 64 x 64 output tile, each warp 32 x 32 as 4 x 4
// MMA tiles. Grid: x = column tiles (up to 2^31 - 1), y = row tiles, at most 65,535:
// blocks loop over the rest. Symmetric (sym != 0): tiles below the diagonal are skipped,
// the others written twice (mirror). Unweighted codes pass one layer spanning all words.
// The numpy twin vqgeom.kernels.cuda.loader.bmma_emulate follows these loops exactly.
#define VQ_BM 64
#define VQ_BMMA_THREADS 128

extern "C" __global__ void vq_bmma_rowpop(const unsigned int* __restrict__ X, int* __restrict__ pop,
                                          const int* __restrict__ loff, int n_layers, long long n, int nw) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    for (int l = 0; l < n_layers; ++l) {
        int c = 0;
        for (int w = loff[l]; w < loff[l + 1]; ++w) c += __popc(X[i * nw + w]);
        pop[i * n_layers + l] = c;
    }
}

__device__ __forceinline__ void vq_mma_and_popc(int* acc, unsigned int a, unsigned int b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m8n8k128.row.col.s32.b1.b1.s32.and.popc {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+r"(acc[0]), "+r"(acc[1])
        : "r"(a), "r"(b));
#else
    __trap();  // the loader launches this kernel only on sm_80 and newer
#endif
}

template <typename OutT, bool WEIGHTED>
__device__ __forceinline__ void vq_bmma_body(const unsigned int* __restrict__ X, const unsigned int* __restrict__ Y,
                                             const int* __restrict__ PX, const int* __restrict__ PY,
                                             OutT* __restrict__ out, const double* __restrict__ lw,
                                             const int* __restrict__ loff, int n_layers,
                                             long long n, long long m, int nw, int sym) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const long long bj = blockIdx.x;
    const long long row_tiles = (n + VQ_BM - 1) / VQ_BM;
    for (long long bi = blockIdx.y; bi < row_tiles; bi += gridDim.y) {
        if (sym && bj < bi) continue;
        const long long r0 = bi * VQ_BM + (warp >> 1) * 32;
        const long long c0 = bj * VQ_BM + (warp & 1) * 32;
        double dtot[4][4][2];
        unsigned int itot[4][4][2];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    dtot[i][j][h] = 0.0;
                    itot[i][j][h] = 0u;
                }
        for (int l = 0; l < n_layers; ++l) {
            const int w0 = loff[l];
            const int w1 = loff[l + 1];
            int acc[4][4][2];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = 0;
            for (int k = w0; k < w1; k += 4) {
                const int w = k + t;
                const bool inw = w < w1;
                unsigned int a[4], b[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const long long r = r0 + i * 8 + g;
                    a[i] = (inw && r < n) ? X[r * nw + w] : 0u;
                    const long long c = c0 + i * 8 + g;
                    b[i] = (inw && c < m) ? Y[c * nw + w] : 0u;
                }
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) vq_mma_and_popc(acc[i][j], a[i], b[j]);
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const long long r = r0 + i * 8 + g;
                const int px = r < n ? PX[r * n_layers + l] : 0;
#pragma unroll
                for (int j = 0; j < 4; ++j)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const long long c = c0 + j * 8 + 2 * t + h;
                        const int py = c < m ? PY[c * n_layers + l] : 0;
                        const int d = px + py - 2 * acc[i][j][h];
                        if (WEIGHTED) {
                            dtot[i][j][h] += lw[l] * (double)d;
                        } else {
                            itot[i][j][h] += (unsigned int)d;
                        }
                    }
            }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const long long r = r0 + i * 8 + g;
                    const long long c = c0 + j * 8 + 2 * t + h;
                    if (r < n && c < m) {
                        const OutT v = WEIGHTED ? (OutT)dtot[i][j][h] : (OutT)itot[i][j][h];
                        out[r * m + c] = v;
                        if (sym && bi != bj) out[c * m + r] = v;
                    }
                }
    }
}

#define VQ_BMMA_DEFINE(NAME, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(VQ_BMMA_THREADS)                                  \
        vq_bmma_##NAME(const unsigned int* __restrict__ X, const unsigned int* __restrict__ Y,     \
                       const int* __restrict__ PX, const int* __restrict__ PY, T* __restrict__ out, \
                       const double* __restrict__ lw, const int* __restrict__ loff, int n_layers,  \
                       long long n, long long m, int nw, int sym, int weighted) {                   \
        if (weighted) {                                                                             \
            vq_bmma_body<T, true>(X, Y, PX, PY, out, lw, loff, n_layers, n, m, nw, sym);            \
        } else {                                                                                    \
            vq_bmma_body<T, false>(X, Y, PX, PY, out, lw, loff, n_layers, n, m, nw, sym);           \
        }                                                                                           \
    }

VQ_BMMA_DEFINE(uint8, unsigned char)
VQ_BMMA_DEFINE(int16, short)
VQ_BMMA_DEFINE(uint16, unsigned short)
VQ_BMMA_DEFINE(int32, int)
VQ_BMMA_DEFINE(int64, long long)
VQ_BMMA_DEFINE(float32, float)
VQ_BMMA_DEFINE(float64, double)
