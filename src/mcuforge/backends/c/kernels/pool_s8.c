/* int8 pooling and mean (TFLite's int8 MAX_POOL_2D, AVERAGE_POOL_2D, MEAN). Pools keep the
 * input's scale and zero point; averages count the taps inside the input only. The bodies are
 * shared with the other element types (MCUFORGE_DEFINE_* of mcuforge.h and mcuforge_int8.h). */
#include "mcuforge_int8.h"

MCUFORGE_DEFINE_MAX_POOL(int8_t, s8, -128)
MCUFORGE_DEFINE_AVG_POOL(int8_t, s8, mcuforge_sat8)
MCUFORGE_DEFINE_MEAN(int8_t, s8, int32_t, mcuforge_sat8, -128, 127)
