/* Stand-in for the macOS SDK's assert.h, for type-checking only (README.md). */
#define assert(x) ((void)0)
