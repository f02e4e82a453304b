/* int16 pooling and mean (TFLite's int16 MAX_POOL_2D, AVERAGE_POOL_2D, MEAN). Pools keep the
 * input's scale and zero point; averages count the taps inside the input only. The bodies are
 * shared with the other element types (MCUFORGE_DEFINE_* of mcuforge.h and mcuforge_int8.h). */
#include "mcuforge_int16.h"

MCUFORGE_DEFINE_MAX_POOL(int16_t, s16, -32768)
MCUFORGE_DEFINE_AVG_POOL(int16_t, s16, mcuforge_sat16)
MCUFORGE_DEFINE_MEAN(int16_t, s16, int64_t, mcuforge_sat16, -32768, 32767)
