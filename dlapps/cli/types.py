"""argparse types of the command line: numbers with their range checked, NaN and infinities refused."""

import argparse


def _number(text, accept, expected):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not accept(value):  # NaN fails every comparison, so it is refused here too.
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number above zero (a learning rate, a size); refuses nan, inf, 0 and negatives."""
    return _number(text, lambda value: 0 < value < float("inf"), "a finite number above 0")


def fraction(text):
    """argparse type: a finite number in [0, 1] (dropout, a split fraction)."""
    return _number(text, lambda value: 0 <= value <= 1, "a number from 0 to 1")


def momentum(text):
    """argparse type: a number in [0, 1) (a moving average's momentum; 1 would never move)."""
    return _number(text, lambda value: 0 <= value < 1, "a number from 0 up to (not including) 1")


def _whole_number(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least {least}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: a whole number of at least 1 (epochs, batch size)."""
    return _whole_number(text, 1)


def non_negative_int(text):
    """argparse type: a whole number of at least 0 (epochs of an optional phase, patience)."""
    return _whole_number(text, 0)
