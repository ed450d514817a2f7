/*
 * bcryptprimitives.dll for Wine 8: a one-function shim.
 *
 * Why this exists: since Rust 1.78 the standard library on x86_64-pc-windows-gnu imports
 * ProcessPrng from bcryptprimitives.dll (it seeds HashMap's RandomState and backs other
 * random needs). Wine gained that DLL only in Wine 9; Debian 12 ships Wine 8, where every
 * Rust program therefore fails to start (the loader reports "bcryptprimitives.dll not
 * found", status c0000135, and wine exits with 53).
 *
 * This DLL is built with mingw-w64 by tools/wine/run.sh and copied beside the executables
 * under test; it is never part of the crate or of anything shipped. ProcessPrng forwards to
 * SystemFunction036 (RtlGenRandom) in advapi32, which Wine 8 has. On real Windows the
 * system's own bcryptprimitives.dll is used and this file plays no part.
 */
#include <windows.h>

/* RtlGenRandom: exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * BOOL ProcessPrng(PBYTE pbData, SIZE_T cbData): fill the buffer with random bytes. Like the
 * real one it never fails; RtlGenRandom takes a ULONG length, so larger requests are split.
 */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
