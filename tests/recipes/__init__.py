"""Tests of the node runner and the megatron (GPU) backend translation."""
