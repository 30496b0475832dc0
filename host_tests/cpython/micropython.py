"""CPython stand-in for MicroPython's `micropython` module (host tests only).

const() is the identity, native/viper decorators leave the function as is, and
heap_lock()/heap_unlock() do nothing: allocation is proven on the unix port,
where the real module exists.
"""


def const(x):
    return x


def native(f):
    return f


def viper(f):
    return f


def heap_lock():
    return 0


def heap_unlock():
    return 0


def alloc_emergency_exception_buf(n):
    return None


def schedule(f, arg):
    f(arg)
