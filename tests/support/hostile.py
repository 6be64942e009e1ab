"""Hostile values that every surface must refuse alike: REST (the gateway), native gRPC (the
services) and the one parser both use (``services.common.wire.conv``)."""

# Decimal strings that are not plain notation: exponents, separators, spaces, signs, other
# digits, too many digits or places.
MALFORMED_DECIMALS = [
    "abc",
    "1e5",
    "1e3",
    "1E3",
    "1e999999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.2.3",
    " 10",
    "10 ",
    " 1 ",
    "+10",
    "0x10",
    "1,000",
    "1_000",
    "10.",
    ".5",
    "-",
    "1" * 15,
    "0." + "1" * 11,
    "١٠",
    "１０",
    "𝟏",
    "10\n",
]
