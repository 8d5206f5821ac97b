"""Python functions used by streamsql's tests, written as a user would write them."""


def count_char(s: str, c: str) -> int:
    """Nexmark q14's CountChar: how many bytes of s equal the first byte of c."""
    if s is None:
        return 0
    wanted = c.encode()[0]
    return sum(1 for b in s.encode() if b == wanted)


def shout(*parts) -> str:
    """Any number of arguments: NULLs skipped, the rest joined upper-cased."""
    return "-".join(str(p).upper() for p in parts if p is not None)


def ratio(a, b):
    return a / b


ratio.result_type = "DOUBLE"


def untyped(x):
    return x


def fails(x: int) -> int:
    raise ValueError(f"cannot take {x}")


def wrong_type(x: int) -> int:
    return "not a number"


class HoltForecast:
    """Holt's linear trend (double exponential smoothing) over a group's values in arrival
    order: the forecast one step past the last value. alpha = 0.5, beta = 0.3."""

    def create_accumulator(self):
        return []

    def accumulate(self, accumulator, value):
        if value is not None:
            accumulator.append(float(value))

    def get_value(self, accumulator) -> float:
        if not accumulator:
            return None
        level, trend = accumulator[0], 0.0
        if len(accumulator) > 1:
            trend = accumulator[1] - accumulator[0]
        for value in accumulator[1:]:
            previous = level
            level = 0.5 * value + 0.5 * (level + trend)
            trend = 0.3 * (level - previous) + 0.7 * trend
        return level + trend


class CountRows:
    """An aggregate counting its rows, with an immutable accumulator returned by accumulate."""

    def create_accumulator(self):
        return 0

    def accumulate(self, accumulator, *values):
        return accumulator + 1

    def get_value(self, accumulator) -> int:
        return accumulator


def is_nan(x: float) -> bool:
    """NaN arrives as NaN."""
    return x != x


def times_infinity(x: float) -> float:
    """Infinities go back as themselves."""
    return x * float("inf")


def noisy(x: int) -> int:
    """Reads stdin (empty) and prints, from Python and from a child process: none of it may
    reach the answers."""
    import os
    import sys

    read = sys.stdin.read()
    print("printing from a Python function", read)
    os.system("echo printing from a child process")
    return x
