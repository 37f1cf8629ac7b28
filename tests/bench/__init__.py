"""Tests of the benches' helper code (bench/), without network beyond loopback."""
