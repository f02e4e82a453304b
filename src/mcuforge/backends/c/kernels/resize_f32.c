/* float32 bilinear resize from compile-time tables: each output row (column) blends two source
 * rows (columns); the columns are blended first, as torch does. */
#include "mcuforge.h"

void mcuforge_resize_bilinear_f32(const mcuforge_resize *p, const float *x, float *y, const int32_t *y0,
                                  const int32_t *y1, const float *fy, const int32_t *x0, const int32_t *x1,
                                  const float *fx) {
    int32_t xs[4], ys[4], n, oy, ox, c;
    MCUFORGE_IO_STRIDES(p, p->c, p->c, xs, ys);
    MCUFORGE_FOR_PIXELS(p, n, oy, ox)
        for (c = 0; c < p->c; ++c) {
            const float *xc = x + n * xs[0] + c * xs[3];
            const float *r0 = xc + y0[oy] * xs[1], *r1 = xc + y1[oy] * xs[1];
            const float top = r0[x0[ox] * xs[2]] * (1.0f - fx[ox]) + r0[x1[ox] * xs[2]] * fx[ox];
            const float bottom = r1[x0[ox] * xs[2]] * (1.0f - fx[ox]) + r1[x1[ox] * xs[2]] * fx[ox];
            y[n * ys[0] + oy * ys[1] + ox * ys[2] + c * ys[3]] = top * (1.0f - fy[oy]) + bottom * fy[oy];
        }
}
