/* Data movement for any element type: strided copies (transpose, slice, concat, split, pad),
 * fills, and nearest-neighbour resize from compile-time index tables. */
#include <string.h>

#include "mcuforge.h"

MCUFORGE_KERNEL(mcuforge_copy)(const mcuforge_copy_shape *p, const void *src, void *dst) {
    const int32_t last = p->rank - 1, n = p->shape[last], e = p->elem;
    const int32_t ss = p->src_stride[last] * e, ds = p->dst_stride[last] * e;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    const int32_t *strides[2];
    int32_t idx[MCUFORGE_MAX_RANK] = {0}, off[2] = {0, 0}, rows = 1, row, i;
    strides[0] = p->src_stride;
    strides[1] = p->dst_stride;
    for (i = 0; i < last; ++i) rows *= p->shape[i];
    for (row = 0; row < rows; ++row) {
        const uint8_t *sr = s + (ptrdiff_t)off[0] * e;
        uint8_t *dr = d + (ptrdiff_t)off[1] * e;
        if (ss == e && ds == e) {
            if (sr != dr) memmove(dr, sr, (size_t)n * (size_t)e);
        } else if (e == 4) {
            for (i = 0; i < n; ++i) memcpy(dr + i * ds, sr + i * ss, 4);
        } else if (e == 1) {
            for (i = 0; i < n; ++i) dr[i * ds] = sr[i * ss];
        } else {
            for (i = 0; i < n; ++i) memcpy(dr + i * ds, sr + i * ss, (size_t)e);
        }
        mcuforge_next_row(p->rank, p->shape, idx, 2, off, strides);
    }
}

MCUFORGE_KERNEL(mcuforge_fill)(void *dst, const void *value, int32_t elem, int32_t count) {
    uint8_t *d = (uint8_t *)dst;
    int32_t i;
    for (i = 0; i < count; ++i) memcpy(d + (ptrdiff_t)i * elem, value, (size_t)elem);
}

MCUFORGE_KERNEL(mcuforge_resize_nearest)(const mcuforge_resize *p, const void *x, void *y, const int32_t *ys,
                                         const int32_t *xs) {
    const uint8_t *src = (const uint8_t *)x;
    uint8_t *dst = (uint8_t *)y;
    int32_t is[4], os[4], n, oy, ox, c;
    MCUFORGE_IO_STRIDES(p, p->c, p->c, is, os);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (c = 0; c < p->c; ++c) {
            const int32_t from = n * is[0] + ys[oy] * is[1] + xs[ox] * is[2] + c * is[3];
            const int32_t to = n * os[0] + oy * os[1] + ox * os[2] + c * os[3];
            memcpy(dst + (ptrdiff_t)to * p->elem, src + (ptrdiff_t)from * p->elem, (size_t)p->elem);
        }
}
