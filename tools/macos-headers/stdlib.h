/* Stand-in for the macOS SDK's stdlib.h, for type-checking only (README.md). */
#include <stddef.h>
void abort(void);
