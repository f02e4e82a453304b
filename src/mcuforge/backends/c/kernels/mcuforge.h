/* mcuforge kernel library: portable C99 kernels that the generated model code calls.
 *
 * Conventions shared by every kernel:
 * - Shapes are described by small structs of int32_t that the generated code keeps as
 *   `static const` (flash). 1-D ops are 2-D ops with a height of 1.
 * - `nhwc` selects the activation layout: 1 channels last (NHWC / NWC), 0 channels first.
 *   Weights are reordered at compile time into the one layout each kernel reads, whatever the
 *   activation layout (documented per kernel).
 * - Kernels never allocate; scratch memory comes from the planned arena. Elementwise kernels
 *   may be called in place (output == input), which the memory planner uses.
 * - float kernels clamp their result to [act_min, act_max] (a fused relu / relu6 or none);
 *   int8 kernels follow TFLite's int8 specification bit for bit (see mcuforge_int8.h).
 * - A kernel file is shipped only when the model calls one of its kernels; every kernel of a
 *   given mcuforge version has the same symbol and bytes in every model, so two generated
 *   models link into one firmware with one copy of each kernel file.
 */
#ifndef MCUFORGE_H
#define MCUFORGE_H

#include <stddef.h>
#include <stdint.h>

#define MCUFORGE_MAX_RANK 6

#if defined(__GNUC__) || defined(__clang__)
#define MCUFORGE_ALIGNED(n) __attribute__((aligned(n)))
#else
#define MCUFORGE_ALIGNED(n) /* the arena is then only as aligned as the compiler makes it */
#endif

/* The definition of a kernel that a layer may run specialized (backends/c/tune.py): the library
 * function; or, where a model's C defines MCUFORGE_SPECIALIZE and includes the kernel file, a
 * static always-inline copy, name_special, that each specialized layer's own function calls with
 * its `static const` parameters, so the compiler folds the layer's shapes, strides and offsets
 * into constants (unrolled loops, dead branches dropped: more code, fewer instructions). */
#if !defined(MCUFORGE_SPECIALIZE)
#define MCUFORGE_KERNEL(name) void name
#elif defined(__GNUC__) || defined(__clang__)
#define MCUFORGE_KERNEL(name) static inline __attribute__((always_inline)) void name##_special
#else
#define MCUFORGE_KERNEL(name) static inline void name##_special
#endif
/* A specialized layer's function is its own (noinline: its code size is measurable) and ends in a
 * compiler barrier: without it arm-none-eabi-gcc 12.2 (-O1 and above) dropped the call of a
 * layer holding a specialized strided copy, as if it had no side effects (the every-build tests). */
#if defined(__GNUC__) || defined(__clang__)
#define MCUFORGE_NOINLINE __attribute__((noinline))
#define MCUFORGE_BARRIER() __asm__ volatile("" ::: "memory")
#else
#define MCUFORGE_NOINLINE
#define MCUFORGE_BARRIER() ((void)0)
#endif

/* Convolution geometry (conv1d, conv2d, depthwise, transposed). */
typedef struct {
    int32_t n, in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int32_t groups, nhwc;
} mcuforge_conv;

/* Pooling geometry; adaptive pooling uses only the sizes and `nhwc`. */
typedef struct {
    int32_t n, in_h, in_w, c, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t count_include_pad, nhwc;
} mcuforge_pool;

/* Broadcasting binary op over an output of `shape` (contiguous): element strides of a and b
 * (0 along broadcast axes); `outer` = product of all but the last dimension. */
typedef struct {
    int32_t rank, outer;
    int32_t shape[MCUFORGE_MAX_RANK], a_stride[MCUFORGE_MAX_RANK], b_stride[MCUFORGE_MAX_RANK];
} mcuforge_bcast;

/* Strided copy (transpose, slice, concat, split, pad): `shape` elements of `elem` bytes. */
typedef struct {
    int32_t rank, elem;
    int32_t shape[MCUFORGE_MAX_RANK], src_stride[MCUFORGE_MAX_RANK], dst_stride[MCUFORGE_MAX_RANK];
} mcuforge_copy_shape;

/* Batched matrix product y[b] = a[b] (m x k) @ b[b] (k x n); batch strides in elements. */
typedef struct {
    int32_t batch, m, k, n;
    int32_t a_batch_stride, b_batch_stride;
} mcuforge_matmul;

/* Resize geometry; the source index (and weight) tables are computed at compile time. */
typedef struct {
    int32_t n, c, in_h, in_w, out_h, out_w, nhwc, elem;
} mcuforge_resize;

/* int8 requantization of a conv / fully connected output (per output channel arrays are passed
 * separately). */
typedef struct {
    int32_t in_zp, out_zp, act_min, act_max;
} mcuforge_requant;

/* int8 add / sub (TFLite ADD / SUB). */
typedef struct {
    int32_t a_zp, b_zp, out_zp, left_shift;
    int32_t a_multiplier, a_shift, b_multiplier, b_shift, multiplier, shift;
    int32_t act_min, act_max, subtract;
} mcuforge_qadd;

/* int8 PRELU (TFLite's): zero points, the identity's and alpha's multipliers. */
typedef struct {
    int32_t in_zp, alpha_zp, out_zp, id_multiplier, id_shift, alpha_multiplier, alpha_shift;
} mcuforge_qprelu;

/* Unary float activations (mcuforge_unary_f32). */
enum {
    MCUFORGE_RELU, MCUFORGE_RELU6, MCUFORGE_CLAMP, MCUFORGE_LEAKY_RELU, MCUFORGE_SIGMOID,
    MCUFORGE_TANH, MCUFORGE_HARDSWISH, MCUFORGE_HARDSIGMOID, MCUFORGE_SILU, MCUFORGE_GELU,
    MCUFORGE_GELU_TANH, MCUFORGE_ELU, MCUFORGE_SOFTPLUS, MCUFORGE_EXP, MCUFORGE_LOG, MCUFORGE_SQRT,
    MCUFORGE_ABS, MCUFORGE_SIGN, MCUFORGE_ERF
};

/* Binary float ops (mcuforge_binary_f32); PRELU: a if a >= 0, else a * b. */
enum { MCUFORGE_ADD, MCUFORGE_SUB, MCUFORGE_MUL, MCUFORGE_DIV, MCUFORGE_PRELU, MCUFORGE_MAXIMUM, MCUFORGE_MINIMUM,
       MCUFORGE_POW };

/* Reductions of mcuforge_reduce_f32. */
enum { MCUFORGE_REDUCE_SUM, MCUFORGE_REDUCE_MAX, MCUFORGE_REDUCE_MIN };

/* Element types of quantize / dequantize / requantize. */
enum { MCUFORGE_I8, MCUFORGE_U8, MCUFORGE_I16, MCUFORGE_I32 };

/* Steps the index `idx` over all but the last axis of `shape` (row-major), keeping the element
 * offsets `off[0..n_off)` along with it (`strides[j]` are operand j's strides). */
static inline void mcuforge_next_row(int32_t rank, const int32_t *shape, int32_t *idx, int32_t n_off,
                                     int32_t *off, const int32_t *const *strides) {
    int32_t d, j;
    for (d = rank - 2; d >= 0; --d) {
        for (j = 0; j < n_off; ++j) off[j] += strides[j][d];
        if (++idx[d] < shape[d]) return;
        for (j = 0; j < n_off; ++j) off[j] -= strides[j][d] * shape[d];
        idx[d] = 0;
    }
}

/* Element strides of an activation [n][h][w][c] stored channels last (nhwc) or first:
 * s[0] per image, s[1] per row, s[2] per column, s[3] per channel. */
static inline void mcuforge_strides(int32_t nhwc, int32_t h, int32_t w, int32_t c, int32_t s[4]) {
    s[0] = h * w * c;
    s[1] = nhwc ? w * c : w;
    s[2] = nhwc ? c : 1;
    s[3] = nhwc ? 1 : h * w;
}

static inline float mcuforge_clampf(float v, float lo, float hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- what the kernels of several element types share: loops, element access ---- */
/* The loops are macros rather than functions taking a callback, so that each kernel's own
 * arithmetic stays inline in its inner loop (what compilers vectorize), with no call per element. */

/* xs, ys: the element strides (mcuforge_strides) of the input (in_c channels) and the output
 * (out_c channels) of a conv, pool or resize `p` */
#define MCUFORGE_IO_STRIDES(p, in_c, out_c, xs, ys)                              \
    (mcuforge_strides((p)->nhwc, (p)->in_h, (p)->in_w, (in_c), (xs)),            \
     mcuforge_strides((p)->nhwc, (p)->out_h, (p)->out_w, (out_c), (ys)))

/* Each output pixel (n, oy, ox) of a conv, pool or resize `p`, row by row. */
#define MCUFORGE_FOR_PIXELS(p, n, oy, ox)                                        \
    for ((n) = 0; (n) < (p)->n; ++(n))                                           \
        for ((oy) = 0; (oy) < (p)->out_h; ++(oy))                                \
            for ((ox) = 0; (ox) < (p)->out_w; ++(ox))

/* Each tap (ky, kx) of the window of output pixel (oy, ox) of a conv or pool `p` that lies inside
 * the input, at input row iy, column ix; taps in the padding are skipped. */
#define MCUFORGE_FOR_TAPS(p, oy, ox, ky, kx, iy, ix)                                                  \
    for ((ky) = 0; (ky) < (p)->k_h; ++(ky))                                                           \
        if (((iy) = (oy) * (p)->stride_h - (p)->pad_top + (ky) * (p)->dil_h) >= 0 && (iy) < (p)->in_h) \
            for ((kx) = 0; (kx) < (p)->k_w; ++(kx))                                                   \
                if (((ix) = (ox) * (p)->stride_w - (p)->pad_left + (kx) * (p)->dil_w) >= 0 && (ix) < (p)->in_w)

/* Element i of an array of integer type `type` (MCUFORGE_I8 ...). */
static inline int32_t mcuforge_load_int(const void *x, int32_t type, int32_t i) {
    switch (type) {
    case MCUFORGE_I8: return ((const int8_t *)x)[i];
    case MCUFORGE_U8: return ((const uint8_t *)x)[i];
    case MCUFORGE_I16: return ((const int16_t *)x)[i];
    default: return ((const int32_t *)x)[i];
    }
}

/* Stores v (within the range of `type`) as element i of an array of integer type `type`. */
static inline void mcuforge_store_int(void *y, int32_t type, int32_t i, int32_t v) {
    switch (type) {
    case MCUFORGE_I8: ((int8_t *)y)[i] = (int8_t)v; break;
    case MCUFORGE_U8: ((uint8_t *)y)[i] = (uint8_t)v; break;
    case MCUFORGE_I16: ((int16_t *)y)[i] = (int16_t)v; break;
    default: ((int32_t *)y)[i] = v; break;
    }
}

/* After a row of a broadcasting binary op `p`: off[0], off[1] step to the next rows of a and b
 * (idx: the row's index, zeros at the start). */
static inline void mcuforge_bcast_next(const mcuforge_bcast *p, int32_t *idx, int32_t off[2]) {
    const int32_t *strides[2];
    strides[0] = p->a_stride;
    strides[1] = p->b_stride;
    mcuforge_next_row(p->rank, p->shape, idx, 2, off, strides);
}

/* ---- float32 (conv_f32.c, fc_f32.c, eltwise_f32.c, pool_f32.c, norm_f32.c, resize_f32.c, quant_f32.c) ---- */
/* w: [out_c][k_h][k_w][in_c / groups]; scratch: out_w * k_h * k_w * in_c / groups floats unless
 * the conv is 1x1, stride 1, unpadded and ungrouped (then NULL). */
void mcuforge_conv2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias, float *y,
                         float *scratch, float act_min, float act_max);
/* Depthwise (groups == in_c): w: [k_h][k_w][out_c]. */
void mcuforge_dwconv2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias, float *y,
                           float act_min, float act_max);
/* Transposed: w: [in_c][k_h][k_w][out_c / groups]. */
void mcuforge_conv_transpose2d_f32(const mcuforge_conv *p, const float *x, const float *w, const float *bias,
                                   float *y, float act_min, float act_max);
/* y[rows][out] = x[rows][depth] @ w[out][depth]^T + bias */
void mcuforge_linear_f32(const float *x, const float *w, const float *bias, float *y, int32_t rows, int32_t depth,
                         int32_t out, float act_min, float act_max);
void mcuforge_matmul_f32(const mcuforge_matmul *p, const float *a, const float *b, float *y);
void mcuforge_binary_f32(int32_t op, const mcuforge_bcast *p, const float *a, const float *b, float *y,
                         float act_min, float act_max);
void mcuforge_unary_f32(int32_t op, const float *x, float *y, int32_t n, float alpha, float beta);
/* y = x * scale[c] + shift[c] over [outer][c][inner] (an unfolded batch norm) */
void mcuforge_affine_f32(const float *x, const float *scale, const float *shift, float *y, int32_t outer,
                         int32_t c, int32_t inner);
void mcuforge_max_pool_f32(const mcuforge_pool *p, const float *x, float *y);
void mcuforge_avg_pool_f32(const mcuforge_pool *p, const float *x, float *y);
void mcuforge_adaptive_avg_pool_f32(const mcuforge_pool *p, const float *x, float *y);
/* y[outer][inner] = mean over r of x[outer][r][inner] */
void mcuforge_mean_f32(const float *x, float *y, int32_t outer, int32_t r, int32_t inner);
/* y[outer][inner] = sum, max or min (MCUFORGE_REDUCE_*) over r of x[outer][r][inner] */
void mcuforge_reduce_f32(int32_t op, const float *x, float *y, int32_t outer, int32_t r, int32_t inner);
void mcuforge_softmax_f32(const float *x, float *y, int32_t outer, int32_t n, int32_t inner, int32_t log);
/* scale / bias may be NULL */
void mcuforge_layer_norm_f32(const float *x, const float *scale, const float *bias, float *y, int32_t outer,
                             int32_t n, float eps);
/* tables: per output row / column the two source indices and the weight of the second */
void mcuforge_resize_bilinear_f32(const mcuforge_resize *p, const float *x, float *y, const int32_t *y0,
                                  const int32_t *y1, const float *fy, const int32_t *x0, const int32_t *x1,
                                  const float *fx);
void mcuforge_quantize_f32(const float *x, void *y, int32_t type, int32_t outer, int32_t c, int32_t inner,
                           const float *scale, const int32_t *zero_point);
void mcuforge_dequantize_f32(const void *x, int32_t type, float *y, int32_t outer, int32_t c, int32_t inner,
                             const float *scale, const int32_t *zero_point);

/* ---- any element type (copy.c) ---- */
void mcuforge_copy(const mcuforge_copy_shape *p, const void *src, void *dst);
void mcuforge_fill(void *dst, const void *value, int32_t elem, int32_t count);
void mcuforge_resize_nearest(const mcuforge_resize *p, const void *x, void *y, const int32_t *ys, const int32_t *xs);

/* ---- int8 (conv_s8.c, fc_s8.c, eltwise_s8.c, pool_s8.c, softmax_s8.c) ---- */
/* w: [out_c][k_h][k_w][in_c / groups]; bias: the conv's bias minus in_zp * sum of each output
 * channel's weights (padding is read as in_zp); scratch: out_w * k_h * k_w * in_c / groups
 * bytes unless 1x1, stride 1, unpadded, ungrouped and channels last (then NULL). */
void mcuforge_conv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y,
                        int8_t *scratch);
/* Depthwise: w: [k_h][k_w][out_c]; bias: the conv's own (or NULL). */
void mcuforge_dwconv2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x, const int8_t *w,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y);
/* Transposed: w: [in_c][k_h][k_w][out_c / groups]; scratch: out_h * out_w * out_c int32. */
void mcuforge_conv_transpose2d_s8(const mcuforge_conv *p, const mcuforge_requant *q, const int8_t *x,
                                  const int8_t *w, const int32_t *bias, const int32_t *multiplier,
                                  const int32_t *shift, int8_t *y, int32_t *scratch);
/* bias as for mcuforge_conv2d_s8 */
void mcuforge_linear_s8(const mcuforge_requant *q, const int8_t *x, const int8_t *w, const int32_t *bias,
                        const int32_t *multiplier, const int32_t *shift, int8_t *y, int32_t rows, int32_t depth,
                        int32_t out);
void mcuforge_add_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y);
void mcuforge_mul_s8(const mcuforge_bcast *p, const mcuforge_qadd *q, const int8_t *a, const int8_t *b, int8_t *y);
void mcuforge_max_pool_s8(const mcuforge_pool *p, const int8_t *x, int8_t *y);
void mcuforge_avg_pool_s8(const mcuforge_pool *p, const int8_t *x, int8_t *y, int32_t act_min, int32_t act_max);
void mcuforge_mean_s8(const int8_t *x, int8_t *y, int32_t outer, int32_t r, int32_t inner, int32_t in_zp,
                      int32_t out_zp, int32_t multiplier, int32_t shift);
/* exps[d + 255] = exp(d * input scale) of each difference d to the row maximum, Q0.31 */
void mcuforge_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t n, const int32_t *exps,
                         int32_t diff_min);
/* the same exps; multiplier/shift: differences -> Q5.26, reverse_*: back (TFLite's LOG_SOFTMAX) */
void mcuforge_log_softmax_s8(const int8_t *x, int8_t *y, int32_t rows, int32_t n, const int32_t *exps,
                             int32_t multiplier, int32_t shift, int32_t diff_min, int32_t reverse_multiplier,
                             int32_t reverse_shift);
/* y = table[x + 128]: any int8 -> int8 function, tabulated at compile time */
void mcuforge_lut_s8(const int8_t *x, int8_t *y, int32_t n, const int8_t *table);
void mcuforge_clamp_s8(const int8_t *x, int8_t *y, int32_t n, int32_t lo, int32_t hi);
void mcuforge_requantize(const void *x, int32_t in_type, void *y, int32_t out_type, int32_t n, int32_t in_zp,
                         int32_t out_zp, int32_t multiplier, int32_t shift);
/* prelu_s8.c: alpha broadcasts as b of `p` */
void mcuforge_prelu_s8(const mcuforge_bcast *p, const mcuforge_qprelu *q, const int8_t *x, const int8_t *alpha,
                       int8_t *y);

/* ---- int16 activations, int8 weights (conv_s16.c, fc_s16.c, eltwise_s16.c, pool_s16.c, sigmoid_s16.c,
 * softmax_s16.c; see mcuforge_int16.h) ---- */
/* Weights as for the int8 kernels; bias: int64 (or NULL). No scratch. */
void mcuforge_conv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                         const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y);
void mcuforge_dwconv2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x, const int8_t *w,
                           const int64_t *bias, const int32_t *multiplier, const int32_t *shift, int16_t *y);
void mcuforge_conv_transpose2d_s16(const mcuforge_conv *p, const mcuforge_requant *q, const int16_t *x,
                                   const int8_t *w, const int64_t *bias, const int32_t *multiplier,
                                   const int32_t *shift, int16_t *y);
void mcuforge_linear_s16(const mcuforge_requant *q, const int16_t *x, const int8_t *w, const int64_t *bias,
                         const int32_t *multiplier, const int32_t *shift, int16_t *y, int32_t rows, int32_t depth,
                         int32_t out);
void mcuforge_add_s16(const mcuforge_bcast *p, const mcuforge_qadd *q, const int16_t *a, const int16_t *b,
                      int16_t *y);
void mcuforge_mul_s16(const mcuforge_bcast *p, const mcuforge_qadd *q, const int16_t *a, const int16_t *b,
                      int16_t *y);
void mcuforge_clamp_s16(const int16_t *x, int16_t *y, int32_t n, int32_t lo, int32_t hi);
/* params: in_zp, out_zp, alpha_multiplier, alpha_shift, id_multiplier, id_shift */
void mcuforge_leaky_relu_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *params);
/* TFLite's int16 LOGISTIC / TANH (sigmoid_s16.c): table: sigmoid(i / 24) in Q0.16, i = 0..255 */
void mcuforge_logistic_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *table, int32_t multiplier,
                           int32_t shift);
void mcuforge_tanh_s16(const int16_t *x, int16_t *y, int32_t n, const int32_t *table, int32_t multiplier,
                       int32_t shift);
/* TFLite's int16 SOFTMAX (softmax_s16.c) over rows of n: exps, reciprocals: its 513-entry tables */
void mcuforge_softmax_s16(const int16_t *x, int16_t *y, int32_t rows, int32_t n, const int16_t *exps,
                          const int16_t *reciprocals, int32_t multiplier, int32_t shift);
void mcuforge_max_pool_s16(const mcuforge_pool *p, const int16_t *x, int16_t *y);
void mcuforge_avg_pool_s16(const mcuforge_pool *p, const int16_t *x, int16_t *y, int32_t act_min, int32_t act_max);
void mcuforge_mean_s16(const int16_t *x, int16_t *y, int32_t outer, int32_t r, int32_t inner, int32_t in_zp,
                       int32_t out_zp, int32_t multiplier, int32_t shift);

/* ---- int8 with compressed weights (packed_s8.c; formats of mcuforge/ir/wformat.py) ---- */
/* Per output channel a row of `bits`-bit codes (least significant bit first, each row starting
 * on a byte, `row_bytes` long) over its weights in the order [k_h][k_w][in_c / groups]; `aux`
 * the kmeans codebook (int8[2^bits], aux_row 0) or the int4 group multipliers
 * ([out_c][aux_row], one per `group` weights of a row). */
enum { MCUFORGE_W_POW2 = 1, MCUFORGE_W_BINARY, MCUFORGE_W_TERNARY, MCUFORGE_W_KMEANS, MCUFORGE_W_INT4 };
typedef struct {
    int32_t scheme, bits, group, row_bytes, aux_row;
} mcuforge_wpack;
/* bias and scratch as for mcuforge_conv2d_s8 */
void mcuforge_conv2d_packed_s8(const mcuforge_conv *p, const mcuforge_wpack *f, const mcuforge_requant *q,
                               const int8_t *x, const uint8_t *w, const int8_t *aux, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int8_t *y, int8_t *scratch);
/* bias: the conv's own (or NULL) */
void mcuforge_dwconv2d_packed_s8(const mcuforge_conv *p, const mcuforge_wpack *f, const mcuforge_requant *q,
                                 const int8_t *x, const uint8_t *w, const int8_t *aux, const int32_t *bias,
                                 const int32_t *multiplier, const int32_t *shift, int8_t *y);
/* bias as for mcuforge_linear_s8 */
void mcuforge_linear_packed_s8(const mcuforge_wpack *f, const mcuforge_requant *q, const int8_t *x, const uint8_t *w,
                               const int8_t *aux, const int32_t *bias, const int32_t *multiplier,
                               const int32_t *shift, int8_t *y, int32_t rows, int32_t depth, int32_t out);

/* ---- kernel bodies that several element types share (the integer ones: mcuforge_int8.h) ---- */

/* mcuforge_max_pool_<suffix> over elements T (lowest: T's smallest value). Channels innermost:
 * contiguous (and vectorized) runs when channels are last. The tap loops are written out rather
 * than MCUFORGE_FOR_TAPS: with the pointer formed before the bounds check, gcc compiles the int8
 * pool to fewer instructions (Cortex-M4). */
#define MCUFORGE_DEFINE_MAX_POOL(T, suffix, lowest)                                                \
    void mcuforge_max_pool_##suffix(const mcuforge_pool *p, const T *x, T *y) {                     \
        int32_t xs[4], ys[4], n, oy, ox, c, ky, kx;                                                 \
        MCUFORGE_IO_STRIDES(p, p->c, p->c, xs, ys);                                                 \
        MCUFORGE_FOR_PIXELS(p, n, oy, ox) {                                                         \
            T *out = y + n * ys[0] + oy * ys[1] + ox * ys[2];                                       \
            for (c = 0; c < p->c; ++c) out[c * ys[3]] = lowest;                                     \
            for (ky = 0; ky < p->k_h; ++ky) {                                                       \
                const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dil_h;                   \
                if (iy < 0 || iy >= p->in_h) continue;                                              \
                for (kx = 0; kx < p->k_w; ++kx) {                                                   \
                    const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dil_w;              \
                    const T *px = x + n * xs[0] + iy * xs[1] + ix * xs[2];                          \
                    if (ix < 0 || ix >= p->in_w) continue;                                          \
                    for (c = 0; c < p->c; ++c)                                                      \
                        out[c * ys[3]] = px[c * xs[3]] > out[c * ys[3]] ? px[c * xs[3]] : out[c * ys[3]]; \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

#endif /* MCUFORGE_H */
