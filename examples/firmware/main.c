/* main.c: one Cortex-M firmware running two models that mcuforge compiled separately:
 * `kws` (keyword spotting, zoo:ds_cnn int8) and `img` (digit images, zoo:digits_cnn int8).
 *
 * Each model brings its own static arena (kws_arena, img_arena) and weights; the kernels are the
 * same files in both. Under QEMU the inputs come from kws_input.bin and img_input.bin through
 * semihosting, the outputs go to kws_output.bin and img_output.bin and are printed.
 * On a real board, fill the inputs from the microphone and the camera instead.
 */
#include <stdio.h>

#include "img.h"
#include "kws.h"

void SysTick_Handler(void);
void SysTick_Handler(void) {} /* the startup code's vector table names it; no tick needed here */

static int8_t kws_in[KWS_INPUT0_BYTES], kws_out[KWS_OUTPUT0_BYTES];
static int8_t img_in[IMG_INPUT0_BYTES], img_out[IMG_OUTPUT0_BYTES];

static int load(const char *path, void *data, size_t bytes) {
    FILE *f = fopen(path, "rb");
    size_t got = f != NULL ? fread(data, 1, bytes, f) : 0;
    if (f != NULL)
        fclose(f);
    if (got != bytes)
        printf("cannot read %u bytes from %s\n", (unsigned)bytes, path);
    return got == bytes;
}

static void report(const char *name, const int8_t *out, size_t n, const char *path) {
    FILE *f = fopen(path, "wb");
    size_t i;
    if (f != NULL) {
        fwrite(out, 1, n, f);
        fclose(f);
    }
    printf("%s:", name);
    for (i = 0; i < n; ++i)
        printf(" %d", out[i]);
    printf("\n");
}

int main(void) {
    const void *kws_inputs[] = {kws_in}, *img_inputs[] = {img_in};
    void *kws_outputs[] = {kws_out}, *img_outputs[] = {img_out};
    if (!load("kws_input.bin", kws_in, sizeof kws_in) || !load("img_input.bin", img_in, sizeof img_in))
        return 2;
    if (kws_invoke(kws_inputs, kws_outputs) != 0 || img_invoke(img_inputs, img_outputs) != 0) {
        puts("invoke failed");
        return 1;
    }
    report("kws", kws_out, sizeof kws_out, "kws_output.bin");
    report("img", img_out, sizeof img_out, "img_output.bin");
    return 0;
}
