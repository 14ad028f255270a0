"""Each platform adapter against its loopback fake (tests/fakes/)."""
