"""The README's Python example: the C library through ctypes.

    python3 hello.py [path/to/libnamedmutex.so]
"""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else "libnamedmutex.so")
lib.nm_create_mutex.restype = ctypes.c_uint64
lib.nm_create_mutex.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.nm_wait_for_single_object.restype = ctypes.c_uint32
lib.nm_wait_for_single_object.argtypes = [ctypes.c_uint64, ctypes.c_uint32]
lib.nm_release_mutex.argtypes = [ctypes.c_uint64]
lib.nm_close_handle.argtypes = [ctypes.c_uint64]
lib.nm_get_last_error.restype = ctypes.c_uint32

WAIT_OBJECT_0, WAIT_ABANDONED, WAIT_TIMEOUT = 0, 0x80, 0x102

existed = ctypes.c_int(0)
h = lib.nm_create_mutex(b"hello-py", 0, ctypes.byref(existed))
if not h:
    sys.exit(f"create failed: error {lib.nm_get_last_error()}")
status = lib.nm_wait_for_single_object(h, 5000)
if status in (WAIT_OBJECT_0, WAIT_ABANDONED):
    print("ours" + (" (the last holder died holding it)" if status == WAIT_ABANDONED else ""))
    lib.nm_release_mutex(h)
elif status == WAIT_TIMEOUT:
    print("busy")
else:
    sys.exit(f"wait failed: error {lib.nm_get_last_error()}")
# A bad handle is an error, never a crash.
assert lib.nm_release_mutex(ctypes.c_uint64(0xDEADBEEF)) == 0
assert lib.nm_get_last_error() == 6
lib.nm_close_handle(h)
